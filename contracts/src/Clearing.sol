// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IVoucherPayables} from "./IVoucherPayables.sol";

/// @title Clearing
/// @notice Escrows FARE paid for plans and settles it to transport operators
///         per clearing period. Also anchors Merkle roots of tap batches.
///         A sale credits each leg's operator (the insurer, a registered operator, is
///         credited the premiums of its cover products). Settling a period
///         (`settlePeriod`, `SETTLER_ROLE`) runs, in order:
///         1. vouchers: if an insurer is set (`setInsurance`), for each registered operator
///            but the insurer, the voucher value the insurer owes it (`payableTo`) is moved
///            from the insurer's unpaid claim to the operator's, as far as the insurer's claim
///            covers it, and booked as paid in DelayInsurance (`settlePayable`, Clearing needs
///            its `CLEARING_ROLE`); the rest stays payable for a later period (`VoucherSettled`);
///         2. adjustments: net transfers between operators computed off chain (usage-based
///            apportionment of bundle revenue) move unpaid claims (`ClaimMoved`);
///         3. payout: every operator is paid its unpaid claim (`Payout`, `PeriodClosed`) and
///            the next period opens. `closePeriod` = `settlePeriod` without adjustments.
///         Both name the period they close and revert `WrongPeriod` for any other, so a re-sent or
///         concurrent close never settles twice.
///         Registering operators and naming the insurer is catalogue work (`CATALOG_ROLE`, a hot
///         key); re-pointing a registered operator's payee redirects its claim, so it needs the
///         admin, and the voucher payables contract is fixed at construction.
/// @dev    Invariant: FARE balance of this contract == totalUnpaid == sum of unpaid(op);
///         steps 1 and 2 only move claims between operators (totalUnpaid is unchanged).
///         An operator's payee and unpaid balance share one storage slot; the insurer
///         and the current period share another.
///         Tap leaves: keccak256(bytes.concat(keccak256(abi.encode(scanId, ticketId, operatorId, at))))
///         with (bytes32 scanId, uint256 ticketId, uint32 operatorId, uint64 at), sorted-pair
///         hashing as in OpenZeppelin MerkleProof (see `tapLeaf`).
contract Clearing is AccessControl {
    using SafeERC20 for IERC20;

    bytes32 public constant MARKET_ROLE = keccak256("MARKET_ROLE");
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");
    bytes32 public constant ANCHOR_ROLE = keccak256("ANCHOR_ROLE");
    bytes32 public constant CATALOG_ROLE = keccak256("CATALOG_ROLE");

    struct Operator {
        address payee;
        uint96 unpaid;
    }

    /// @notice A net transfer of `amount` of unpaid claim from operator `from` to operator `to`.
    struct Transfer {
        uint32 from;
        uint32 to;
        uint256 amount;
    }

    IERC20 public immutable fareToken;
    /// @notice The only contract `setInsurance` can name: a catalogue key must not be able to point
    ///         settlement at a contract of its own that claims the insurer's premiums as payables.
    IVoucherPayables public immutable insuranceContract;

    uint32[] private _operatorIds;
    mapping(uint32 operatorId => Operator) private _operators;
    uint256 private _totalUnpaid;
    // one slot: read together when a period is settled
    IVoucherPayables private _insurance;
    uint32 private _insurerId;
    uint64 private _currentPeriod = 1;
    uint64 private _nextBatchId = 1;
    mapping(uint64 batchId => bytes32 root) private _batchRoots;
    /// @dev a batch's Merkle root (its business key off chain) to its id: anchored once
    mapping(bytes32 root => uint64 batchId) private _batchOfRoot;

    event OperatorSet(uint32 indexed operatorId, address payee);
    event Credited(uint64 indexed planId, uint32 indexed operatorId, uint256 amount);
    /// @dev one per purchase; the per-leg split is in PlanMarket's LegSold events
    event CreditedBatch(uint64 indexed planId, uint256 total);
    event Refunded(uint32 indexed operatorId, address indexed to, uint256 amount);
    event Payout(uint64 indexed periodId, uint32 indexed operatorId, address payee, uint256 amount);
    event PeriodClosed(uint64 indexed periodId, uint256 totalPaid);
    event TapBatchAnchored(uint64 indexed batchId, bytes32 merkleRoot, uint32 tapCount);
    event InsuranceSet(address insurance, uint32 insurerId);
    event VoucherSettled(uint64 indexed periodId, uint32 indexed insurerId, uint32 indexed operatorId, uint256 amount);
    event ClaimMoved(uint64 indexed periodId, uint32 indexed fromOperator, uint32 indexed toOperator, uint256 amount);

    error ZeroAddress();
    error UnknownOperator(uint32 operatorId);
    error InsufficientEscrow(uint256 balance, uint256 required);
    error InsufficientUnpaid(uint32 operatorId, uint256 unpaid, uint256 required);
    error LengthMismatch();
    error ZeroRoot();
    error SelfTransfer(uint32 operatorId);
    error ZeroAmount();
    error UnknownInsurance(address insurance);
    error WrongPeriod(uint64 given, uint64 current);
    /// @notice This root is anchored already, as batch `batchId`: nothing was anchored again.
    error BatchAlreadyAnchored(bytes32 merkleRoot, uint64 batchId);

    /// @param insurance_ the DelayInsurance contract whose voucher payables settlement may pay
    ///        (see `setInsurance`); address(0) = never
    constructor(address admin, IERC20 fare, IVoucherPayables insurance_) {
        if (address(fare) == address(0)) revert ZeroAddress();
        fareToken = fare;
        insuranceContract = insurance_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Register an operator (`CATALOG_ROLE`) or change a registered operator's payee
    ///         (`DEFAULT_ADMIN_ROLE`: the new payee receives the operator's whole unpaid claim).
    function setOperator(uint32 operatorId, address payee) external {
        Operator storage o = _operators[operatorId];
        bool registered = o.payee != address(0);
        _checkRole(registered ? DEFAULT_ADMIN_ROLE : CATALOG_ROLE);
        if (payee == address(0)) revert ZeroAddress();
        if (!registered) _operatorIds.push(operatorId);
        o.payee = payee;
        emit OperatorSet(operatorId, payee);
    }

    /// @notice Pay redeemed delay vouchers out of the claim of operator `insurerId` (must be
    ///         registered) at each settlement; `insurance_` = `insuranceContract` (the
    ///         DelayInsurance contract, which must grant this contract its `CLEARING_ROLE`),
    ///         address(0) disables it.
    function setInsurance(address insurance_, uint32 insurerId) external onlyRole(CATALOG_ROLE) {
        if (insurance_ != address(0) && insurance_ != address(insuranceContract)) {
            revert UnknownInsurance(insurance_);
        }
        if (_operators[insurerId].payee == address(0)) revert UnknownOperator(insurerId);
        _insurance = IVoucherPayables(insurance_);
        _insurerId = insurerId;
        emit InsuranceSet(insurance_, insurerId);
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

    /// @notice The DelayInsurance contract whose vouchers are paid out of operator `insurerId`'s
    ///         claim (address(0) = none).
    function insurance() external view returns (address insurance_, uint32 insurerId) {
        return (address(_insurance), _insurerId);
    }

    /// @notice Settle period `periodId`, which must be the current one (else `WrongPeriod`): pay
    ///         redeemed vouchers out of the insurer's claim, move claims by `adjustments` (in
    ///         order), then pay every operator its unpaid balance and open the next period.
    function settlePeriod(uint64 periodId, Transfer[] calldata adjustments)
        external
        onlyRole(SETTLER_ROLE)
        returns (uint64)
    {
        _checkPeriod(periodId);
        _settleVouchers(periodId);
        _moveClaims(periodId, adjustments);
        _payOut(periodId);
        return periodId;
    }

    /// @notice `settlePeriod` without adjustments: pay redeemed vouchers out of the insurer's
    ///         claim, pay every operator its unpaid balance and open the next period.
    function closePeriod(uint64 periodId) external onlyRole(SETTLER_ROLE) returns (uint64) {
        _checkPeriod(periodId);
        _settleVouchers(periodId);
        _payOut(periodId);
        return periodId;
    }

    /// @dev a close names the period it means: once that period is closed, the same request
    ///      (re-sent, or racing another closer) fails instead of settling the next one
    function _checkPeriod(uint64 periodId) private view {
        uint64 current = _currentPeriod;
        if (periodId != current) revert WrongPeriod(periodId, current);
    }

    /// @dev step 1: for each registered operator but the insurer, move min(payableTo(op), the
    ///      insurer's remaining claim) from the insurer's claim to op's and book it as paid in
    ///      the insurance contract (each move before its call); stops once the claim is spent
    function _settleVouchers(uint64 periodId) private {
        IVoucherPayables ins = _insurance;
        if (address(ins) == address(0)) return;
        uint32 insurerId = _insurerId;
        Operator storage insurer = _operators[insurerId];
        uint256 claim = insurer.unpaid;
        if (claim == 0 || ins.totalPayable() == 0) return;
        uint256 n = _operatorIds.length;
        for (uint256 i; i < n; ++i) {
            uint32 op = _operatorIds[i];
            if (op == insurerId) continue;
            uint256 owed = ins.payableTo(op);
            if (owed == 0) continue;
            uint256 amount = owed < claim ? owed : claim;
            unchecked {
                claim -= amount;
            }
            insurer.unpaid = uint96(claim);
            Operator storage o = _operators[op];
            o.unpaid = SafeCast.toUint96(o.unpaid + amount);
            ins.settlePayable(op, amount);
            emit VoucherSettled(periodId, insurerId, op, amount);
            if (claim == 0) break;
        }
    }

    /// @dev step 2: net transfers of unpaid claim between registered operators
    function _moveClaims(uint64 periodId, Transfer[] calldata adjustments) private {
        uint256 n = adjustments.length;
        for (uint256 i; i < n; ++i) {
            Transfer calldata t = adjustments[i];
            (uint32 from, uint32 to, uint256 amount) = (t.from, t.to, t.amount);
            Operator storage f = _operators[from];
            if (f.payee == address(0)) revert UnknownOperator(from);
            Operator storage r = _operators[to];
            if (r.payee == address(0)) revert UnknownOperator(to);
            if (from == to) revert SelfTransfer(from);
            if (amount == 0) revert ZeroAmount();
            uint256 available = f.unpaid;
            if (available < amount) revert InsufficientUnpaid(from, available, amount);
            unchecked {
                f.unpaid = uint96(available - amount);
            }
            r.unpaid = SafeCast.toUint96(r.unpaid + amount);
            emit ClaimMoved(periodId, from, to, amount);
        }
    }

    /// @dev step 3: pay every registered operator its unpaid balance (effects first, then the
    ///      transfers) and open the next period
    function _payOut(uint64 periodId) private {
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

    /// @notice Anchor the Merkle root of a batch of taps; O(1) whatever `tapCount` is. The root
    ///         is the batch's business key: anchoring it again is refused (`BatchAlreadyAnchored`),
    ///         so a re-sent anchor never counts a batch twice.
    function anchorTapBatch(bytes32 merkleRoot, uint32 tapCount)
        external
        onlyRole(ANCHOR_ROLE)
        returns (uint64 batchId)
    {
        if (merkleRoot == bytes32(0)) revert ZeroRoot();
        uint64 done = _batchOfRoot[merkleRoot];
        if (done != 0) revert BatchAlreadyAnchored(merkleRoot, done);
        batchId = _nextBatchId++;
        _batchRoots[batchId] = merkleRoot;
        _batchOfRoot[merkleRoot] = batchId;
        emit TapBatchAnchored(batchId, merkleRoot, tapCount);
    }

    /// @notice The batch `merkleRoot` was anchored as (0: not anchored).
    function batchOf(bytes32 merkleRoot) external view returns (uint64) {
        return _batchOfRoot[merkleRoot];
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
