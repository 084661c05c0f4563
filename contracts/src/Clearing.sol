// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title Clearing
/// @notice Escrows FARE paid for plans and settles it to transport operators
///         per clearing period. Also anchors Merkle roots of tap batches.
contract Clearing is AccessControl {
    using SafeERC20 for IERC20;

    bytes32 public constant MARKET_ROLE = keccak256("MARKET_ROLE");
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");
    bytes32 public constant ANCHOR_ROLE = keccak256("ANCHOR_ROLE");

    IERC20 public immutable fareToken;

    uint32[] private _operatorIds;
    mapping(uint32 operatorId => address payee) private _payees;
    mapping(uint32 operatorId => uint256 amount) private _unpaid;
    uint256 private _totalUnpaid;
    uint64 private _currentPeriod = 1;
    uint64 private _nextBatchId = 1;

    event OperatorSet(uint32 indexed operatorId, address payee);
    event Credited(uint64 indexed planId, uint32 indexed operatorId, uint256 amount);
    event Payout(uint64 indexed periodId, uint32 indexed operatorId, address payee, uint256 amount);
    event PeriodClosed(uint64 indexed periodId, uint256 totalPaid);
    event TapBatchAnchored(uint64 indexed batchId, bytes32 merkleRoot, uint32 tapCount);

    error ZeroAddress();
    error UnknownOperator(uint32 operatorId);
    error InsufficientEscrow(uint256 balance, uint256 required);

    constructor(address admin, IERC20 fare) {
        if (address(fare) == address(0)) revert ZeroAddress();
        fareToken = fare;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Register an operator or change its payee.
    function setOperator(uint32 operatorId, address payee) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (payee == address(0)) revert ZeroAddress();
        if (_payees[operatorId] == address(0)) _operatorIds.push(operatorId);
        _payees[operatorId] = payee;
        emit OperatorSet(operatorId, payee);
    }

    /// @notice Credit `amount` (already transferred into this contract) to an operator.
    function credit(uint64 planId, uint32 operatorId, uint256 amount) external onlyRole(MARKET_ROLE) {
        if (_payees[operatorId] == address(0)) revert UnknownOperator(operatorId);
        uint256 newTotal = _totalUnpaid + amount;
        uint256 balance = fareToken.balanceOf(address(this));
        if (balance < newTotal) revert InsufficientEscrow(balance, newTotal);
        _totalUnpaid = newTotal;
        _unpaid[operatorId] += amount;
        emit Credited(planId, operatorId, amount);
    }

    function unpaid(uint32 operatorId) external view returns (uint256) {
        return _unpaid[operatorId];
    }

    function totalUnpaid() external view returns (uint256) {
        return _totalUnpaid;
    }

    function currentPeriod() external view returns (uint64) {
        return _currentPeriod;
    }

    function operatorPayee(uint32 operatorId) external view returns (address) {
        return _payees[operatorId];
    }

    /// @notice Pay every registered operator its unpaid balance and open the next period.
    function closePeriod() external onlyRole(SETTLER_ROLE) returns (uint64 periodId) {
        periodId = _currentPeriod;
        uint256 n = _operatorIds.length;
        uint256[] memory amounts = new uint256[](n);
        uint256 totalPaid;

        // effects
        for (uint256 i; i < n; ++i) {
            uint32 id = _operatorIds[i];
            uint256 amount = _unpaid[id];
            if (amount != 0) {
                amounts[i] = amount;
                totalPaid += amount;
                _unpaid[id] = 0;
            }
        }
        _totalUnpaid -= totalPaid;
        _currentPeriod = periodId + 1;

        // interactions
        for (uint256 i; i < n; ++i) {
            uint256 amount = amounts[i];
            if (amount != 0) {
                uint32 id = _operatorIds[i];
                address to = _payees[id];
                fareToken.safeTransfer(to, amount);
                emit Payout(periodId, id, to, amount);
            }
        }
        emit PeriodClosed(periodId, totalPaid);
    }

    function anchorTapBatch(bytes32 merkleRoot, uint32 tapCount)
        external
        onlyRole(ANCHOR_ROLE)
        returns (uint64 batchId)
    {
        batchId = _nextBatchId++;
        emit TapBatchAnchored(batchId, merkleRoot, tapCount);
    }

    function operatorIds() external view returns (uint32[] memory) {
        return _operatorIds;
    }
}
