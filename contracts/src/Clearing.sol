// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title Clearing
/// @notice Escrows FARE paid for plans and settles it to transport operators
///         per clearing period. Also anchors Merkle roots of tap batches.
/// @dev    Invariant: FARE balance of this contract == totalUnpaid == sum of unpaid(op).
///         An operator's payee and unpaid balance share one storage slot.
///         Tap leaves: keccak256(bytes.concat(keccak256(abi.encode(scanId, ticketId, operatorId, at))))
///         with (bytes32 scanId, uint256 ticketId, uint32 operatorId, uint64 at), sorted-pair
///         hashing as in OpenZeppelin MerkleProof (see `tapLeaf`).
contract Clearing is AccessControl {
    using SafeERC20 for IERC20;

    bytes32 public constant MARKET_ROLE = keccak256("MARKET_ROLE");
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");
    bytes32 public constant ANCHOR_ROLE = keccak256("ANCHOR_ROLE");

    struct Operator {
        address payee;
        uint96 unpaid;
    }

    IERC20 public immutable fareToken;

    uint32[] private _operatorIds;
    mapping(uint32 operatorId => Operator) private _operators;
    uint256 private _totalUnpaid;
    uint64 private _currentPeriod = 1;
    uint64 private _nextBatchId = 1;
    mapping(uint64 batchId => bytes32 root) private _batchRoots;

    event OperatorSet(uint32 indexed operatorId, address payee);
    event Credited(uint64 indexed planId, uint32 indexed operatorId, uint256 amount);
    /// @dev one per purchase; the per-leg split is in PlanMarket's LegSold events
    event CreditedBatch(uint64 indexed planId, uint256 total);
    event Refunded(uint32 indexed operatorId, address indexed to, uint256 amount);
    event Payout(uint64 indexed periodId, uint32 indexed operatorId, address payee, uint256 amount);
    event PeriodClosed(uint64 indexed periodId, uint256 totalPaid);
    event TapBatchAnchored(uint64 indexed batchId, bytes32 merkleRoot, uint32 tapCount);

    error ZeroAddress();
    error UnknownOperator(uint32 operatorId);
    error InsufficientEscrow(uint256 balance, uint256 required);
    error InsufficientUnpaid(uint32 operatorId, uint256 unpaid, uint256 required);
    error LengthMismatch();
    error ZeroRoot();

    constructor(address admin, IERC20 fare) {
        if (address(fare) == address(0)) revert ZeroAddress();
        fareToken = fare;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Register an operator or change its payee.
    function setOperator(uint32 operatorId, address payee) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (payee == address(0)) revert ZeroAddress();
        Operator storage o = _operators[operatorId];
        if (o.payee == address(0)) _operatorIds.push(operatorId);
        o.payee = payee;
        emit OperatorSet(operatorId, payee);
    }

    /// @notice Credit `amount` (already transferred into this contract) to an operator.
    function credit(uint64 planId, uint32 operatorId, uint256 amount) external onlyRole(MARKET_ROLE) {
        _credit(planId, operatorId, amount);
        _checkEscrow(_totalUnpaid + amount);
        _totalUnpaid += amount;
    }

    /// @notice Credit several operators at once (one escrow check); used once per purchase.
    function creditBatch(uint64 planId, uint32[] calldata operatorIds_, uint256[] calldata amounts)
        external
        onlyRole(MARKET_ROLE)
    {
        uint256 n = operatorIds_.length;
        if (amounts.length != n) revert LengthMismatch();
        uint256 sum;
        for (uint256 i; i < n; ++i) {
            Operator storage o = _operators[operatorIds_[i]];
            if (o.payee == address(0)) revert UnknownOperator(operatorIds_[i]);
            o.unpaid = SafeCast.toUint96(o.unpaid + amounts[i]);
            sum += amounts[i];
        }
        emit CreditedBatch(planId, sum);
        uint256 newTotal = _totalUnpaid + sum;
        _checkEscrow(newTotal);
        _totalUnpaid = newTotal;
    }

    /// @notice Return `amount` of an operator's unpaid claim from escrow to `to` (ticket refund).
    function refund(uint32 operatorId, address to, uint256 amount) external onlyRole(MARKET_ROLE) {
        if (to == address(0)) revert ZeroAddress();
        Operator storage o = _operators[operatorId];
        uint256 owed = o.unpaid;
        if (owed < amount) revert InsufficientUnpaid(operatorId, owed, amount);
        unchecked {
            o.unpaid = uint96(owed - amount);
            _totalUnpaid -= amount;
        }
        emit Refunded(operatorId, to, amount);
        fareToken.safeTransfer(to, amount);
    }

    function unpaid(uint32 operatorId) external view returns (uint256) {
        return _operators[operatorId].unpaid;
    }

    function totalUnpaid() external view returns (uint256) {
        return _totalUnpaid;
    }

    function currentPeriod() external view returns (uint64) {
        return _currentPeriod;
    }

    function operatorPayee(uint32 operatorId) external view returns (address) {
        return _operators[operatorId].payee;
    }

    /// @notice Pay every registered operator its unpaid balance and open the next period.
    function closePeriod() external onlyRole(SETTLER_ROLE) returns (uint64 periodId) {
        periodId = _currentPeriod;
        uint256 n = _operatorIds.length;
        uint256[] memory amounts = new uint256[](n);
        address[] memory payees = new address[](n);
        uint256 totalPaid;

        // effects
        for (uint256 i; i < n; ++i) {
            Operator storage o = _operators[_operatorIds[i]];
            uint256 amount = o.unpaid;
            if (amount != 0) {
                amounts[i] = amount;
                payees[i] = o.payee;
                totalPaid += amount;
                o.unpaid = 0;
            }
        }
        _totalUnpaid -= totalPaid;
        _currentPeriod = periodId + 1;

        // interactions
        for (uint256 i; i < n; ++i) {
            uint256 amount = amounts[i];
            if (amount != 0) {
                fareToken.safeTransfer(payees[i], amount);
                emit Payout(periodId, _operatorIds[i], payees[i], amount);
            }
        }
        emit PeriodClosed(periodId, totalPaid);
    }

    /// @notice Anchor the Merkle root of a batch of taps; O(1) whatever `tapCount` is.
    function anchorTapBatch(bytes32 merkleRoot, uint32 tapCount)
        external
        onlyRole(ANCHOR_ROLE)
        returns (uint64 batchId)
    {
        if (merkleRoot == bytes32(0)) revert ZeroRoot();
        batchId = _nextBatchId++;
        _batchRoots[batchId] = merkleRoot;
        emit TapBatchAnchored(batchId, merkleRoot, tapCount);
    }

    function batchRoot(uint64 batchId) external view returns (bytes32) {
        return _batchRoots[batchId];
    }

    /// @notice Whether `leaf` (see `tapLeaf`) is part of anchored batch `batchId`.
    function verifyTap(uint64 batchId, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        bytes32 root = _batchRoots[batchId];
        return root != bytes32(0) && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice Leaf format of a tap: keccak256(bytes.concat(keccak256(abi.encode(scanId, ticketId, operatorId, at)))).
    function tapLeaf(bytes32 scanId, uint256 ticketId, uint32 operatorId, uint64 time) external pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(scanId, ticketId, operatorId, time))));
    }

    function operatorIds() external view returns (uint32[] memory) {
        return _operatorIds;
    }

    function _credit(uint64 planId, uint32 operatorId, uint256 amount) private {
        Operator storage o = _operators[operatorId];
        if (o.payee == address(0)) revert UnknownOperator(operatorId);
        o.unpaid = SafeCast.toUint96(o.unpaid + amount);
        emit Credited(planId, operatorId, amount);
    }

    function _checkEscrow(uint256 required) private view {
        uint256 balance = fareToken.balanceOf(address(this));
        if (balance < required) revert InsufficientEscrow(balance, required);
    }
}
