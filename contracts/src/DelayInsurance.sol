// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Ticket} from "./Ticket.sol";

/// @title DelayInsurance
/// @notice Parametric delay cover sold as an insurance leg of a plan. Oracles
///         (k-of-n, `quorum`) report delays; once `quorum` distinct reporters have
///         reported the same (delayId, policyId) at or above the threshold, a voucher
///         NFT ("KVCH") is minted to the policy holder. A voucher is redeemable once,
///         before expiry, at its operator or at any operator of its category; redemption
///         books the insurer's payable to the redeeming operator. Total voucher value
///         issued per pool period is capped (`poolCap`, 0 = no cap).
contract DelayInsurance is ERC721, AccessControl {
    bytes32 public constant MARKET_ROLE = keccak256("MARKET_ROLE");
    bytes32 public constant ORACLE_ROLE = keccak256("ORACLE_ROLE");
    bytes32 public constant REDEEMER_ROLE = keccak256("REDEEMER_ROLE");

    struct Terms {
        uint32 thresholdMinutes;
        uint128 voucherValue;
        uint32 voucherOperatorId;
        uint64 voucherLifetime;
    }

    struct Policy {
        address holder;
        uint64 validFrom;
        uint64 validUntil;
    }

    struct Voucher {
        uint256 policyId;
        uint128 value;
        uint32 operatorId;
        uint64 expiry;
        bytes32 delayId;
        bytes32 category;
        uint32 delayMinutes;
    }

    /// @dev one slot
    struct PolicySlot {
        address holder;
        uint40 validFrom;
        uint40 validUntil;
    }

    /// @dev value/operatorId/expiry/delayMinutes share one slot; category costs nothing when 0
    struct VoucherSlot {
        uint128 value;
        uint32 operatorId;
        uint64 expiry;
        uint32 delayMinutes;
        uint256 policyId;
        bytes32 delayId;
        bytes32 category;
    }

    /// @dev one slot
    struct Tally {
        uint8 votes;
        uint32 minMinutes;
    }

    /// @notice Ticket contract whose FLAG_INSURED tickets are covered without a stored policy
    ///         (policyId = ticketId, holder = current ticket owner, window = ticket validity).
    Ticket public ticketContract;
    Terms private _terms;
    uint256 private _nextVoucherId = 1;
    uint8 private _quorum = 1;
    bytes32 private _voucherCategory;
    uint128 private _poolCap;
    uint64 private _poolPeriod = 30 days;
    uint256 private _totalPayable;
    mapping(uint256 policyId => PolicySlot) private _policies;
    mapping(uint256 voucherId => VoucherSlot) private _vouchers;
    mapping(uint256 policyId => mapping(bytes32 delayId => bool)) private _compensated;
    mapping(uint256 policyId => mapping(bytes32 delayId => Tally)) private _tallies;
    mapping(uint256 policyId => mapping(bytes32 delayId => mapping(address reporter => bool))) private _voted;
    mapping(uint64 poolPeriodId => uint256 value) private _issuedInPeriod;
    mapping(uint32 operatorId => bytes32 category) private _operatorCategory;
    mapping(uint32 operatorId => uint256 amount) private _payable;

    event TermsSet(uint32 thresholdMinutes, uint128 voucherValue, uint32 voucherOperatorId, uint64 voucherLifetime);
    event QuorumSet(uint8 quorum);
    event TicketContractSet(address ticket);
    event PoolCapSet(uint128 cap, uint64 periodLength);
    event VoucherCategorySet(bytes32 category);
    event OperatorCategorySet(uint32 indexed operatorId, bytes32 category);
    event PolicyOpened(uint256 indexed policyId, address indexed holder, uint64 validFrom, uint64 validUntil);
    event PolicyCancelled(uint256 indexed policyId);
    event DelayVote(
        bytes32 indexed delayId, uint256 indexed policyId, address indexed reporter, uint32 delayMinutes, uint8 votes
    );
    event DelayReported(bytes32 indexed delayId, uint256 indexed policyId, uint32 delayMinutes);
    event VoucherIssued(
        uint256 indexed voucherId,
        uint256 indexed policyId,
        address indexed holder,
        uint128 value,
        uint32 operatorId,
        uint64 expiry,
        bytes32 delayId
    );
    event VoucherRedeemed(uint256 indexed voucherId, uint32 indexed operatorId, uint128 value);

    error InvalidTerms();
    error InvalidQuorum();
    error ZeroAddress();
    error InvalidWindow();
    error PolicyExists(uint256 policyId);
    error UnknownPolicy(uint256 policyId);
    error NotCovered(uint256 policyId);
    error BelowThreshold(uint32 delayMinutes, uint32 thresholdMinutes);
    error AlreadyCompensated(uint256 policyId, bytes32 delayId);
    error AlreadyVoted(uint256 policyId, bytes32 delayId, address reporter);
    error PoolCapReached(uint256 issued, uint256 cap);
    error UnknownVoucher(uint256 voucherId);
    error WrongOperator(uint256 voucherId, uint32 operatorId);
    error VoucherExpired(uint256 voucherId);

    constructor(address admin, Terms memory terms_) ERC721("Kippu Voucher", "KVCH") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setTerms(terms_);
    }

    // ------------------------------------------------------------------ admin

    function setTerms(Terms calldata terms_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTerms(terms_);
    }

    /// @notice Bind ticket-backed policies (see `coverTicket`) to `ticket`.
    function setTicketContract(Ticket ticket) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(ticket) == address(0)) revert ZeroAddress();
        ticketContract = ticket;
        emit TicketContractSet(address(ticket));
    }

    /// @notice Number of distinct oracle reports needed to issue a voucher (1 = single oracle).
    function setQuorum(uint8 quorum_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (quorum_ == 0) revert InvalidQuorum();
        _quorum = quorum_;
        emit QuorumSet(quorum_);
    }

    /// @notice Cap the voucher value issued per pool period of `periodLength` seconds (cap 0 = unlimited).
    function setPoolCap(uint128 cap, uint64 periodLength) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (periodLength == 0) revert InvalidTerms();
        _poolCap = cap;
        _poolPeriod = periodLength;
        emit PoolCapSet(cap, periodLength);
    }

    /// @notice Category stamped on newly issued vouchers (0 = only the terms' operator).
    function setVoucherCategory(bytes32 category) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _voucherCategory = category;
        emit VoucherCategorySet(category);
    }

    function setOperatorCategory(uint32 operatorId, bytes32 category) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _operatorCategory[operatorId] = category;
        emit OperatorCategorySet(operatorId, category);
    }

    // ------------------------------------------------------------------ views

    function terms() external view returns (Terms memory) {
        return _terms;
    }

    function quorum() external view returns (uint8) {
        return _quorum;
    }

    function poolCap() external view returns (uint128 cap, uint64 periodLength) {
        return (_poolCap, _poolPeriod);
    }

    function poolPeriodId() public view returns (uint64) {
        return uint64(block.timestamp / _poolPeriod);
    }

    function issuedInPeriod(uint64 periodId) external view returns (uint256) {
        return _issuedInPeriod[periodId];
    }

    function voucherCategory() external view returns (bytes32) {
        return _voucherCategory;
    }

    function operatorCategory(uint32 operatorId) external view returns (bytes32) {
        return _operatorCategory[operatorId];
    }

    /// @notice Voucher value booked as payable by the insurer to `operatorId`.
    function payableTo(uint32 operatorId) external view returns (uint256) {
        return _payable[operatorId];
    }

    function totalPayable() external view returns (uint256) {
        return _totalPayable;
    }

    function votes(uint256 policyId, bytes32 delayId) external view returns (uint8 count, uint32 minMinutes) {
        Tally memory t = _tallies[policyId][delayId];
        return (t.votes, t.minMinutes);
    }

    function hasVoted(uint256 policyId, bytes32 delayId, address reporter) external view returns (bool) {
        return _voted[policyId][delayId][reporter];
    }

    // ------------------------------------------------------------------ policies

    function openPolicy(uint256 policyId, address holder, uint64 validFrom, uint64 validUntil)
        external
        onlyRole(MARKET_ROLE)
    {
        if (holder == address(0)) revert ZeroAddress();
        if (validUntil <= validFrom || validUntil > type(uint40).max) revert InvalidWindow();
        if (_policies[policyId].holder != address(0)) revert PolicyExists(policyId);
        _policies[policyId] = PolicySlot({holder: holder, validFrom: uint40(validFrom), validUntil: uint40(validUntil)});
        emit PolicyOpened(policyId, holder, validFrom, validUntil);
    }

    /// @notice Announce cover of an insured ticket (FLAG_INSURED) without storing a policy:
    ///         the policy is read from the Ticket contract when a delay is reported.
    function coverTicket(uint256 ticketId, address holder, uint64 validFrom, uint64 validUntil)
        external
        onlyRole(MARKET_ROLE)
    {
        emit PolicyOpened(ticketId, holder, validFrom, validUntil);
    }

    /// @notice Cancel a stored policy.
    function cancelPolicy(uint256 policyId) external onlyRole(MARKET_ROLE) {
        if (_policies[policyId].holder == address(0)) revert UnknownPolicy(policyId);
        delete _policies[policyId];
        emit PolicyCancelled(policyId);
    }

    /// @notice One oracle's delay report. Returns the voucher id when this vote reaches
    ///         the quorum, 0 otherwise (a vote below quorum only records the vote).
    function reportDelay(bytes32 delayId, uint256 policyId, uint32 delayMinutes)
        external
        onlyRole(ORACLE_ROLE)
        returns (uint256 voucherId)
    {
        PolicySlot memory p = _policyOf(policyId);
        if (p.holder == address(0)) revert UnknownPolicy(policyId);
        if (block.timestamp < p.validFrom || block.timestamp >= p.validUntil) revert NotCovered(policyId);
        Terms memory t = _terms;
        if (delayMinutes < t.thresholdMinutes) revert BelowThreshold(delayMinutes, t.thresholdMinutes);
        if (_compensated[policyId][delayId]) revert AlreadyCompensated(policyId, delayId);
        if (_quorum == 1) {
            // single-oracle fast path: no vote bookkeeping
            emit DelayVote(delayId, policyId, msg.sender, delayMinutes, 1);
            _compensated[policyId][delayId] = true;
            return _issue(delayId, policyId, p.holder, t, delayMinutes);
        }
        if (_voted[policyId][delayId][msg.sender]) revert AlreadyVoted(policyId, delayId, msg.sender);
        _voted[policyId][delayId][msg.sender] = true;

        Tally memory tally = _tallies[policyId][delayId];
        tally.votes += 1;
        if (tally.votes == 1 || delayMinutes < tally.minMinutes) tally.minMinutes = delayMinutes;
        emit DelayVote(delayId, policyId, msg.sender, delayMinutes, tally.votes);
        if (tally.votes < _quorum) {
            _tallies[policyId][delayId] = tally;
            return 0;
        }
        delete _tallies[policyId][delayId];
        _compensated[policyId][delayId] = true;
        voucherId = _issue(delayId, policyId, p.holder, t, tally.minMinutes);
    }

    function redeem(uint256 voucherId, uint32 operatorId) external onlyRole(REDEEMER_ROLE) {
        if (_ownerOf(voucherId) == address(0)) revert UnknownVoucher(voucherId);
        VoucherSlot storage v = _vouchers[voucherId];
        if (v.operatorId != operatorId && (v.category == bytes32(0) || _operatorCategory[operatorId] != v.category)) {
            revert WrongOperator(voucherId, operatorId);
        }
        if (block.timestamp >= v.expiry) revert VoucherExpired(voucherId);
        uint128 value = v.value;
        _payable[operatorId] += value;
        _totalPayable += value;
        _burn(voucherId);
        emit VoucherRedeemed(voucherId, operatorId, value);
    }

    /// @notice Voucher data; kept after redemption (the NFT is burnt).
    function voucher(uint256 id) external view returns (Voucher memory) {
        VoucherSlot memory v = _vouchers[id];
        if (v.expiry == 0) revert UnknownVoucher(id);
        return Voucher({
            policyId: v.policyId,
            value: v.value,
            operatorId: v.operatorId,
            expiry: v.expiry,
            delayId: v.delayId,
            category: v.category,
            delayMinutes: v.delayMinutes
        });
    }

    function policy(uint256 id) external view returns (Policy memory) {
        PolicySlot memory p = _policyOf(id);
        if (p.holder == address(0)) revert UnknownPolicy(id);
        return Policy({holder: p.holder, validFrom: p.validFrom, validUntil: p.validUntil});
    }

    /// @notice Whether `delayId` has already produced a voucher for `policyId`.
    function compensated(uint256 policyId, bytes32 delayId) external view returns (bool) {
        return _compensated[policyId][delayId];
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }

    /// @dev stored policy, else the insured, unburnt ticket `id` (a not yet activated ROLLING
    ///      ticket is covered from its validFrom to activation deadline + its rolling days)
    function _policyOf(uint256 id) private view returns (PolicySlot memory p) {
        p = _policies[id];
        Ticket t = ticketContract;
        if (p.holder != address(0) || address(t) == address(0)) return p;
        try t.ticketData(id) returns (Ticket.TicketData memory d) {
            if (d.flags & 4 == 0) return p; // Ticket.FLAG_INSURED
            uint40 until = d.validUntil;
            if (d.validity == 1 && d.flags & 2 == 0) until += uint40(d.rollingDays) * 1 days; // ROLLING, unused
            return PolicySlot({holder: t.ownerOf(id), validFrom: d.validFrom, validUntil: until});
        } catch {
            return p;
        }
    }

    function _issue(bytes32 delayId, uint256 policyId, address holder, Terms memory t, uint32 minutes_)
        private
        returns (uint256 voucherId)
    {
        uint128 cap = _poolCap;
        if (cap != 0) {
            uint64 pid = poolPeriodId();
            uint256 issued = _issuedInPeriod[pid] + t.voucherValue;
            if (issued > cap) revert PoolCapReached(_issuedInPeriod[pid], cap);
            _issuedInPeriod[pid] = issued;
        }
        voucherId = _nextVoucherId++;
        uint64 expiry = uint64(block.timestamp) + t.voucherLifetime;
        _vouchers[voucherId] = VoucherSlot({
            value: t.voucherValue,
            operatorId: t.voucherOperatorId,
            expiry: expiry,
            delayMinutes: minutes_,
            policyId: policyId,
            delayId: delayId,
            category: _voucherCategory
        });
        emit DelayReported(delayId, policyId, minutes_);
        _mint(holder, voucherId);
        emit VoucherIssued(voucherId, policyId, holder, t.voucherValue, t.voucherOperatorId, expiry, delayId);
    }

    function _setTerms(Terms memory t) private {
        if (t.voucherLifetime == 0) revert InvalidTerms();
        _terms = t;
        emit TermsSet(t.thresholdMinutes, t.voucherValue, t.voucherOperatorId, t.voucherLifetime);
    }
}
