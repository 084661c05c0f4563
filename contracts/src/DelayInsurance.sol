// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Ticket} from "./Ticket.sol";
import {IVoucherPayables} from "./IVoucherPayables.sol";

/// @title DelayInsurance
/// @notice Parametric delay cover sold as an insurance leg of a plan. Oracles
///         (k-of-n, `quorum`) report delays; once `quorum` distinct reporters have
///         reported the same (delayId, policyId) at or above the threshold, a voucher
///         NFT ("KVCH") is minted to the policy holder. A voucher is redeemable once,
///         before expiry, at its operator or at any operator of its category; redemption
///         books the insurer's payable to the redeeming operator (`payableTo`). Clearing
///         (`CLEARING_ROLE`) pays that payable out of the insurer's premium claim when it
///         settles a period and books the payment here (`settlePayable`); whatever the
///         insurer's claim cannot cover stays payable for a later period. Total voucher
///         value issued per pool period is capped (`poolCap`, 0 = no cap).
///         A product (Ticket `productId`) can carry its own terms (`setProductTerms`):
///         threshold, voucher value/operator/lifetime/category and caps per delayed run
///         (`maxPerTrip`) and per policy and UTC day (`maxPerDay`); products without
///         terms and stored policies (product 0) use the global `Terms`.
/// @dev    Invariant: `totalPayable` == sum of `payableTo(op)` over all operator ids.
contract DelayInsurance is ERC721, AccessControl, IVoucherPayables {
    bytes32 public constant MARKET_ROLE = keccak256("MARKET_ROLE");
    bytes32 public constant ORACLE_ROLE = keccak256("ORACLE_ROLE");
    bytes32 public constant REDEEMER_ROLE = keccak256("REDEEMER_ROLE");
    bytes32 public constant CLEARING_ROLE = keccak256("CLEARING_ROLE");
    /// @notice Sets cover terms and voucher categories (a hot key); the ticket contract, the
    ///         oracle quorum and the pool cap (the insurer's risk limit) stay with the admin.
    bytes32 public constant CATALOG_ROLE = keccak256("CATALOG_ROLE");

    struct Terms {
        uint32 thresholdMinutes;
        uint128 voucherValue;
        uint32 voucherOperatorId;
        uint64 voucherLifetime;
    }

    /// @notice Delay cover terms of one product (see `setProductTerms`).
    struct ProductTerms {
        uint32 thresholdMinutes;
        uint128 voucherValue;
        uint32 voucherOperatorId;
        uint64 voucherLifetime;
        bytes32 voucherCategory; // kind of voucher (e.g. keccak256("taxi")); 0 = only voucherOperatorId accepts it
        uint16 maxPerTrip; // vouchers this product pays for one delayed run (delayId), all holders together; 0 = no cap
        uint16 maxPerDay; // vouchers one policy receives per UTC day (block.timestamp / 1 days); 0 = no cap
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
    struct ProductCaps {
        uint16 maxPerTrip;
        uint16 maxPerDay;
        bool hasCategory;
    }

    /// @dev slot 0 = `terms` (voucherLifetime != 0 marks the product as set), slot 1 = `caps`,
    ///      slot 2 = `category`, read only when `caps.hasCategory`
    struct ProductTermsSlot {
        Terms terms;
        ProductCaps caps;
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
    mapping(uint32 productId => ProductTermsSlot) private _productTerms;
    mapping(uint32 productId => mapping(bytes32 delayId => uint16)) private _issuedForRun;
    mapping(uint256 policyId => mapping(uint64 day => uint16)) private _issuedOnDay;

    event TermsSet(uint32 thresholdMinutes, uint128 voucherValue, uint32 voucherOperatorId, uint64 voucherLifetime);
    event QuorumSet(uint8 quorum);
    event TicketContractSet(address ticket);
    event PoolCapSet(uint128 cap, uint64 periodLength);
    event VoucherCategorySet(bytes32 category);
    event OperatorCategorySet(uint32 indexed operatorId, bytes32 category);
    event ProductTermsSet(
        uint32 indexed productId,
        uint32 thresholdMinutes,
        uint128 voucherValue,
        uint32 voucherOperatorId,
        uint64 voucherLifetime,
        bytes32 voucherCategory,
        uint16 maxPerTrip,
        uint16 maxPerDay
    );
    event ProductTermsCleared(uint32 indexed productId);
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
    event PayableSettled(uint32 indexed operatorId, uint256 amount);

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
    error TripCapReached(uint32 productId, bytes32 delayId, uint16 cap);
    error DailyCapReached(uint256 policyId, uint64 day, uint16 cap);
    error InsufficientPayable(uint32 operatorId, uint256 payable_, uint256 amount);

    constructor(address admin, Terms memory terms_) ERC721("Kippu Voucher", "KVCH") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setTerms(terms_);
    }

    // ------------------------------------------------------------------ admin and catalogue

    function setTerms(Terms calldata terms_) external onlyRole(CATALOG_ROLE) {
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
    function setVoucherCategory(bytes32 category) external onlyRole(CATALOG_ROLE) {
        _voucherCategory = category;
        emit VoucherCategorySet(category);
    }

    function setOperatorCategory(uint32 operatorId, bytes32 category) external onlyRole(CATALOG_ROLE) {
        _operatorCategory[operatorId] = category;
        emit OperatorCategorySet(operatorId, category);
    }

    /// @notice Terms for insured tickets of `productId`, replacing the global terms for them.
    ///         Caps (0 = none) are counted only while they are set: `maxPerTrip` per
    ///         (productId, delayId) over all holders, `maxPerDay` per policy and UTC day.
    function setProductTerms(uint32 productId, ProductTerms calldata t) external onlyRole(CATALOG_ROLE) {
        if (t.voucherLifetime == 0 || productId == 0) revert InvalidTerms();
        ProductTermsSlot storage s = _productTerms[productId];
        s.terms = Terms({
            thresholdMinutes: t.thresholdMinutes,
            voucherValue: t.voucherValue,
            voucherOperatorId: t.voucherOperatorId,
            voucherLifetime: t.voucherLifetime
        });
        bool hasCategory = t.voucherCategory != bytes32(0);
        s.caps = ProductCaps({maxPerTrip: t.maxPerTrip, maxPerDay: t.maxPerDay, hasCategory: hasCategory});
        if (hasCategory || s.category != bytes32(0)) s.category = t.voucherCategory;
        emit ProductTermsSet(
            productId,
            t.thresholdMinutes,
            t.voucherValue,
            t.voucherOperatorId,
            t.voucherLifetime,
            t.voucherCategory,
            t.maxPerTrip,
            t.maxPerDay
        );
    }

    /// @notice Drop `productId`'s terms: its policies fall back to the global terms (no caps).
    function clearProductTerms(uint32 productId) external onlyRole(CATALOG_ROLE) {
        delete _productTerms[productId];
        emit ProductTermsCleared(productId);
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

    function productTerms(uint32 productId) external view returns (ProductTerms memory cover, bool isSet) {
        return _productTermsOf(productId);
    }

    /// @notice The terms a delay report against `policyId` uses: its product's terms, else the
    ///         global terms with the global voucher category and no caps.
    function termsFor(uint256 policyId) external view returns (ProductTerms memory) {
        (PolicySlot memory p, uint32 productId) = _policyOf(policyId);
        if (p.holder == address(0)) revert UnknownPolicy(policyId);
        (ProductTerms memory pt, bool isSet) = _productTermsOf(productId);
        if (isSet) return pt;
        Terms memory g = _terms;
        return ProductTerms({
            thresholdMinutes: g.thresholdMinutes,
            voucherValue: g.voucherValue,
            voucherOperatorId: g.voucherOperatorId,
            voucherLifetime: g.voucherLifetime,
            voucherCategory: _voucherCategory,
            maxPerTrip: 0,
            maxPerDay: 0
        });
    }

    /// @notice Vouchers issued for `productId` on the delayed run `delayId` (counted while a trip cap is set).
    function issuedForRun(uint32 productId, bytes32 delayId) external view returns (uint16) {
        return _issuedForRun[productId][delayId];
    }

    /// @notice Vouchers `policyId` received on UTC day `day` (counted while its product has a daily cap).
    function issuedOnDay(uint256 policyId, uint64 day) external view returns (uint16) {
        return _issuedOnDay[policyId][day];
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
        (PolicySlot memory p, uint32 productId) = _policyOf(policyId);
        if (p.holder == address(0)) revert UnknownPolicy(policyId);
        if (block.timestamp < p.validFrom || block.timestamp >= p.validUntil) revert NotCovered(policyId);
        // the product's terms if it has any (productId stays the product), else the global ones (productId = 0)
        Terms memory t;
        if (productId != 0) t = _productTerms[productId].terms;
        if (t.voucherLifetime == 0) {
            t = _terms;
            productId = 0;
        }
        if (delayMinutes < t.thresholdMinutes) revert BelowThreshold(delayMinutes, t.thresholdMinutes);
        if (_compensated[policyId][delayId]) revert AlreadyCompensated(policyId, delayId);
        if (_quorum == 1) {
            // single-oracle fast path: no vote bookkeeping
            emit DelayVote(delayId, policyId, msg.sender, delayMinutes, 1);
            _compensated[policyId][delayId] = true;
            return _issue(delayId, policyId, p.holder, t, delayMinutes, productId);
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
        voucherId = _issue(delayId, policyId, p.holder, t, tally.minMinutes, productId);
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

    /// @notice Clearing paid `amount` of the voucher value payable to `operatorId` (out of the
    ///         insurer's claim): lowers `payableTo(operatorId)` and `totalPayable` by `amount`.
    function settlePayable(uint32 operatorId, uint256 amount) external onlyRole(CLEARING_ROLE) {
        uint256 owed = _payable[operatorId];
        if (amount > owed) revert InsufficientPayable(operatorId, owed, amount);
        unchecked {
            // totalPayable >= payableTo(operatorId) >= amount
            _payable[operatorId] = owed - amount;
            _totalPayable -= amount;
        }
        emit PayableSettled(operatorId, amount);
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
        (PolicySlot memory p,) = _policyOf(id);
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
    ///      ticket is covered from its validFrom to activation deadline + its rolling days), with
    ///      its product (the ticket's productId; 0 for stored policies)
    function _policyOf(uint256 id) private view returns (PolicySlot memory p, uint32 productId) {
        p = _policies[id];
        Ticket t = ticketContract;
        if (p.holder != address(0) || address(t) == address(0)) return (p, 0);
        try t.ticketData(id) returns (Ticket.TicketData memory d) {
            if (d.flags & 4 == 0) return (p, 0); // Ticket.FLAG_INSURED
            uint40 until = d.validUntil;
            if (d.validity == 1 && d.flags & 2 == 0) until += uint40(d.rollingDays) * 1 days; // ROLLING, unused
            return (PolicySlot({holder: t.ownerOf(id), validFrom: d.validFrom, validUntil: until}), d.productId);
        } catch {
            return (p, 0);
        }
    }

    function _productTermsOf(uint32 productId) private view returns (ProductTerms memory r, bool isSet) {
        ProductTermsSlot memory s = _productTerms[productId];
        isSet = s.terms.voucherLifetime != 0;
        r = ProductTerms({
            thresholdMinutes: s.terms.thresholdMinutes,
            voucherValue: s.terms.voucherValue,
            voucherOperatorId: s.terms.voucherOperatorId,
            voucherLifetime: s.terms.voucherLifetime,
            voucherCategory: s.category,
            maxPerTrip: s.caps.maxPerTrip,
            maxPerDay: s.caps.maxPerDay
        });
    }

    /// @dev category of a voucher issued now under the terms of `productId` (0 = global terms);
    ///      for a product, first checks and counts its caps for one more voucher
    function _voucherCategoryFor(uint32 productId, bytes32 delayId, uint256 policyId) private returns (bytes32) {
        if (productId == 0) return _voucherCategory;
        ProductTermsSlot storage s = _productTerms[productId];
        ProductCaps memory c = s.caps;
        if (c.maxPerTrip != 0) {
            uint16 n = _issuedForRun[productId][delayId];
            if (n >= c.maxPerTrip) revert TripCapReached(productId, delayId, c.maxPerTrip);
            unchecked {
                _issuedForRun[productId][delayId] = n + 1;
            }
        }
        if (c.maxPerDay != 0) {
            uint64 day = uint64(block.timestamp / 1 days);
            uint16 n = _issuedOnDay[policyId][day];
            if (n >= c.maxPerDay) revert DailyCapReached(policyId, day, c.maxPerDay);
            unchecked {
                _issuedOnDay[policyId][day] = n + 1;
            }
        }
        return c.hasCategory ? s.category : bytes32(0);
    }

    /// @dev `productId` = product whose terms `t` are (its caps and category apply), 0 = global terms.
    ///      Checks in order: trip cap, daily cap, pool cap.
    function _issue(
        bytes32 delayId,
        uint256 policyId,
        address holder,
        Terms memory t,
        uint32 minutes_,
        uint32 productId
    ) private returns (uint256 voucherId) {
        {
            bytes32 category = _voucherCategoryFor(productId, delayId, policyId);
            uint128 cap = _poolCap;
            if (cap != 0) {
                uint64 pid = poolPeriodId();
                uint256 issued = _issuedInPeriod[pid] + t.voucherValue;
                if (issued > cap) revert PoolCapReached(_issuedInPeriod[pid], cap);
                _issuedInPeriod[pid] = issued;
            }
            voucherId = _nextVoucherId++;
            _vouchers[voucherId] = VoucherSlot({
                value: t.voucherValue,
                operatorId: t.voucherOperatorId,
                expiry: uint64(block.timestamp) + t.voucherLifetime,
                delayMinutes: minutes_,
                policyId: policyId,
                delayId: delayId,
                category: category
            });
        }
        emit DelayReported(delayId, policyId, minutes_);
        _mint(holder, voucherId);
        emit VoucherIssued(
            voucherId,
            policyId,
            holder,
            t.voucherValue,
            t.voucherOperatorId,
            uint64(block.timestamp) + t.voucherLifetime,
            delayId
        );
    }

    function _setTerms(Terms memory t) private {
        if (t.voucherLifetime == 0) revert InvalidTerms();
        _terms = t;
        emit TermsSet(t.thresholdMinutes, t.voucherValue, t.voucherOperatorId, t.voucherLifetime);
    }
}
