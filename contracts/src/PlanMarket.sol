// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {FareToken} from "./FareToken.sol";
import {Ticket} from "./Ticket.sol";
import {Clearing} from "./Clearing.sol";
import {DelayInsurance} from "./DelayInsurance.sol";

/// @title PlanMarket
/// @notice Sells bundles of operator products as one plan in one transaction:
///         takes FARE into Clearing escrow, mints all leg Tickets in one call,
///         credits Clearing once per purchase (aggregated per operator) and opens
///         delay cover for insured legs. Purchases can be gasless (relayed EIP-2612
///         permit) and can carry an EIP-712 concession attestation. Unused tickets of
///         refundable products can be refunded inside their refund window.
contract PlanMarket is AccessControl, Pausable, EIP712 {
    using SafeERC20 for IERC20;

    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant CONCESSION_ISSUER_ROLE = keccak256("CONCESSION_ISSUER_ROLE");
    /// @notice Lists products and bundles (a hot key); role grants, the concession cap and
    ///         pausing stay with the admin.
    bytes32 public constant CATALOG_ROLE = keccak256("CATALOG_ROLE");
    bytes32 public constant CONCESSION_TYPEHASH =
        keccak256("Concession(address holder,uint8 kind,uint16 discountBps,uint64 expiry,bytes32 nonce)");
    uint16 public constant MAX_DISCOUNT_BPS = 5000;
    uint256 private constant BPS = 10_000;
    uint8 private constant P_INSURED = 1;
    uint8 private constant P_TRANSFERABLE = 2;
    uint8 private constant P_ACTIVE = 4;
    uint8 private constant P_REFUNDABLE = 8;

    /// @notice Admin input for `setProduct`.
    /// @param validity Ticket.FIXED (0), Ticket.ROLLING (1) or Ticket.RIDES (2)
    /// @param duration FIXED/RIDES: window length in seconds from validFrom;
    ///                 ROLLING: validity after first use, whole days (multiple of 1 days)
    /// @param activationWindow ROLLING only: the first ride must happen within this many seconds of validFrom
    /// @param rides rides per ticket (Ticket.UNLIMITED_RIDES = unlimited; RIDES needs a finite N > 0)
    /// @param refundBps share of the paid leg price refunded for an unused ticket (0 = not refundable)
    /// @param refundWindow refunds are possible until validFrom + refundWindow (capped at validUntil)
    struct ProductConfig {
        uint32 operatorId;
        uint32 zone;
        uint128 price;
        uint8 validity;
        uint64 duration;
        uint64 activationWindow;
        uint32 rides;
        bool insurance;
        bool transferable;
        uint16 refundBps;
        uint64 refundWindow;
    }

    /// @notice Product as returned by `product` (storage is packed, see ProductSlot/ProductTail).
    struct Product {
        uint32 operatorId;
        uint32 zone;
        uint128 price;
        uint64 duration;
        uint64 activationWindow;
        uint64 refundWindow;
        uint32 rides;
        uint16 refundBps;
        uint8 validity;
        bool insurance;
        bool transferable;
        bool active;
    }

    /// @dev the purchase path reads only this slot per leg
    struct ProductSlot {
        uint32 operatorId;
        uint96 price;
        uint32 duration;
        uint32 activationWindow;
        uint32 rides;
        uint8 validity;
        uint8 flags;
    }

    /// @dev read only for refundable products
    struct ProductTail {
        uint32 zone;
        uint16 refundBps;
        uint64 refundWindow;
    }

    struct Bundle {
        uint32[] productIds;
        uint16 discountBps;
    }

    /// @notice EIP-712 concession attestation (no personal data): kind 1 student, 2 senior, 3 disability.
    struct Concession {
        address holder;
        uint8 kind;
        uint16 discountBps;
        uint64 expiry;
        bytes32 nonce;
    }

    /// @notice EIP-2612 permit signature parts (value = maxPrice, spender = this market).
    struct PermitSig {
        uint256 deadline;
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    /// @dev one slot per refundable ticket
    struct RefundSlot {
        uint128 amount;
        uint40 deadline;
    }

    FareToken public immutable fareToken;
    Ticket public immutable ticketContract;
    Clearing public immutable clearingContract;
    DelayInsurance public immutable insuranceContract;

    mapping(uint32 productId => ProductSlot) private _products;
    mapping(uint32 productId => ProductTail) private _productTails;
    mapping(uint32 bundleId => Bundle) private _bundles;
    mapping(bytes32 nonce => bool) private _concessionUsed;
    mapping(uint256 ticketId => RefundSlot) private _refunds;
    /// @dev a purchase request id (chosen off chain, one per traveler intent) to the plan it
    ///      bought, so a purchase sent again (a dropped or reorganised transaction re-signed at
    ///      another nonce) cannot buy a second plan
    mapping(bytes32 requestId => uint64 planId) private _purchases;
    uint64 private _nextPlanId = 1;
    // packed with _nextPlanId, which every purchase writes anyway
    uint16 private _maxConcessionBps;

    event ProductListed(
        uint32 indexed productId,
        uint32 indexed operatorId,
        uint128 price,
        uint64 duration,
        uint32 rides,
        bool insurance
    );
    event ProductTerms(
        uint32 indexed productId,
        uint32 zone,
        uint8 validity,
        uint64 activationWindow,
        bool transferable,
        uint16 refundBps,
        uint64 refundWindow
    );
    event BundleListed(uint32 indexed bundleId, uint32[] productIds, uint16 discountBps, uint256 price);
    event PlanPurchased(
        uint64 indexed planId, address indexed traveler, uint32 indexed bundleId, uint256 price, uint64 validFrom
    );
    event LegSold(
        uint64 indexed planId, uint256 indexed ticketId, uint32 indexed operatorId, uint32 productId, uint256 share
    );
    event ConcessionApplied(uint64 indexed planId, bytes32 indexed nonce, uint8 kind, uint16 discountBps);
    event TicketRefunded(uint256 indexed ticketId, address indexed traveler, uint32 indexed operatorId, uint256 amount);
    event MaxConcessionSet(uint16 maxBps);

    error ZeroAddress();
    error InvalidDuration();
    error InvalidProduct();
    error EmptyBundle();
    error UnknownProduct(uint32 productId);
    error DiscountTooHigh(uint16 discountBps);
    error UnknownBundle(uint32 bundleId);
    error PriceAboveMax(uint256 price, uint256 maxPrice);
    error ValidityOverflow();
    error ConcessionExpired(uint64 expiry);
    error ConcessionReplayed(bytes32 nonce);
    error ConcessionWrongHolder(address holder, address traveler);
    error UntrustedConcessionIssuer(address signer);
    error InvalidConcession();
    error NotTicketHolder(uint256 ticketId, address caller);
    error NotRefundable(uint256 ticketId);
    error TicketAlreadyUsed(uint256 ticketId);
    error RefundWindowClosed(uint256 ticketId);
    error ConcessionAboveMax(uint16 discountBps, uint16 maxBps);
    error RefundNeedsRelayer(uint256 ticketId, uint64 validFrom);
    error ZeroRequestId();
    /// @notice This purchase request already bought plan `planId`: nothing was bought again.
    error PurchaseAlreadyMade(bytes32 requestId, uint64 planId);

    /// @param maxConcession the largest concession discount a purchase may carry (see `setMaxConcessionBps`)
    constructor(
        address admin,
        FareToken fare,
        Ticket ticket,
        Clearing clearing,
        DelayInsurance insurance,
        uint16 maxConcession
    ) EIP712("Kippu PlanMarket", "1") {
        if (
            address(fare) == address(0) || address(ticket) == address(0) || address(clearing) == address(0)
                || address(insurance) == address(0)
        ) revert ZeroAddress();
        fareToken = fare;
        ticketContract = ticket;
        clearingContract = clearing;
        insuranceContract = insurance;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setMaxConcessionBps(maxConcession);
    }

    /// @notice Cap the concession discount at `maxBps`: an attestation above it is refused even when
    ///         validly signed, so a leaked or buggy attestor key cannot sell plans for (almost) nothing.
    function setMaxConcessionBps(uint16 maxBps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMaxConcessionBps(maxBps);
    }

    function maxConcessionBps() external view returns (uint16) {
        return _maxConcessionBps;
    }

    // ------------------------------------------------------------------ catalogue

    function setProduct(uint32 productId, ProductConfig calldata c) external onlyRole(CATALOG_ROLE) {
        if (c.duration == 0) revert InvalidDuration();
        if (c.validity > 2 || c.refundBps > BPS) revert InvalidProduct();
        if (c.validity == 1) {
            // rolling: whole days, fits the ticket's uint16 day counter, needs an activation window
            if (c.duration % 1 days != 0 || c.duration / 1 days > type(uint16).max || c.activationWindow == 0) {
                revert InvalidDuration();
            }
        } else if (c.validity == 2) {
            if (c.rides == 0 || c.rides == type(uint32).max) revert InvalidProduct();
        }
        if (
            c.price > type(uint96).max || c.duration > type(uint32).max || c.activationWindow > type(uint32).max
                || uint256(c.activationWindow) + c.duration > type(uint32).max
        ) revert InvalidProduct();
        uint8 flags = P_ACTIVE | (c.insurance ? P_INSURED : 0) | (c.transferable ? P_TRANSFERABLE : 0)
            | (c.refundBps != 0 ? P_REFUNDABLE : 0);
        _products[productId] = ProductSlot({
            operatorId: c.operatorId,
            price: uint96(c.price),
            duration: uint32(c.duration),
            activationWindow: uint32(c.activationWindow),
            rides: c.rides,
            validity: c.validity,
            flags: flags
        });
        _productTails[productId] = ProductTail({zone: c.zone, refundBps: c.refundBps, refundWindow: c.refundWindow});
        emit ProductListed(productId, c.operatorId, c.price, c.duration, c.rides, c.insurance);
        emit ProductTerms(
            productId, c.zone, c.validity, c.activationWindow, c.transferable, c.refundBps, c.refundWindow
        );
    }

    function setBundle(uint32 bundleId, uint32[] calldata productIds, uint16 discountBps)
        external
        onlyRole(CATALOG_ROLE)
    {
        if (productIds.length == 0) revert EmptyBundle();
        if (discountBps > MAX_DISCOUNT_BPS) revert DiscountTooHigh(discountBps);
        for (uint256 i; i < productIds.length; ++i) {
            if (_products[productIds[i]].flags & P_ACTIVE == 0) revert UnknownProduct(productIds[i]);
        }
        _bundles[bundleId] = Bundle({productIds: productIds, discountBps: discountBps});
        (uint256 price,) = quote(bundleId);
        emit BundleListed(bundleId, productIds, discountBps, price);
    }

    function product(uint32 productId) external view returns (Product memory) {
        ProductSlot memory p = _products[productId];
        ProductTail memory t = _productTails[productId];
        return Product({
            operatorId: p.operatorId,
            zone: t.zone,
            price: p.price,
            duration: p.duration,
            activationWindow: p.activationWindow,
            refundWindow: t.refundWindow,
            rides: p.rides,
            refundBps: t.refundBps,
            validity: p.validity,
            insurance: p.flags & P_INSURED != 0,
            transferable: p.flags & P_TRANSFERABLE != 0,
            active: p.flags & P_ACTIVE != 0
        });
    }

    function bundleProducts(uint32 bundleId) external view returns (uint32[] memory productIds, uint16 discountBps) {
        Bundle storage b = _bundles[bundleId];
        return (b.productIds, b.discountBps);
    }

    /// @notice Discounted bundle price and its exact split over the legs.
    /// @dev price = floor(listSum * (10000 - discountBps) / 10000); every leg but the last
    ///      gets floor(price * listPrice_i / listSum), the last gets the remainder, so the
    ///      shares always add up to exactly `price`.
    function quote(uint32 bundleId) public view returns (uint256 price, uint256[] memory legShares) {
        return quoteWithConcession(bundleId, 0);
    }

    /// @notice As `quote`, with a further concession discount applied to the bundle price.
    function quoteWithConcession(uint32 bundleId, uint16 concessionBps)
        public
        view
        returns (uint256 price, uint256[] memory legShares)
    {
        (price, legShares,,) = _quote(bundleId, concessionBps);
    }

    /// @notice The plan purchase request `requestId` bought (0: none).
    function purchaseOf(bytes32 requestId) external view returns (uint64) {
        return _purchases[requestId];
    }

    function concessionUsed(bytes32 nonce) external view returns (bool) {
        return _concessionUsed[nonce];
    }

    /// @notice Refund still available for `ticketId`: amount and deadline (0,0 if none).
    function refundable(uint256 ticketId) external view returns (uint256 amount, uint64 deadline) {
        RefundSlot memory r = _refunds[ticketId];
        return (r.amount, r.deadline);
    }

    function concessionDigest(Concession calldata c) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(CONCESSION_TYPEHASH, c.holder, c.kind, c.discountBps, c.expiry, c.nonce))
        );
    }

    // ------------------------------------------------------------------ purchase

    /// @notice Buy a bundle for yourself; needs a prior FARE approval of at least the price.
    ///         `requestId` (nonzero, chosen by the buyer, one per purchase intent) makes the
    ///         purchase idempotent: sent again, it is refused with `PurchaseAlreadyMade`.
    function buy(bytes32 requestId, uint32 bundleId, uint64 validFrom, uint256 maxPrice)
        external
        whenNotPaused
        returns (uint64 planId)
    {
        _claimRequest(requestId);
        return _purchase(requestId, msg.sender, bundleId, validFrom, maxPrice, 0);
    }

    /// @notice Gasless purchase: Kippu relays the traveler's EIP-2612 permit (value = maxPrice).
    /// @dev The permit is wrapped in try/catch so a front-run permit (already consumed
    ///      nonce) does not block the purchase; transferFrom still enforces the allowance.
    function buyWithPermit(
        bytes32 requestId,
        address traveler,
        uint32 bundleId,
        uint64 validFrom,
        uint256 maxPrice,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external onlyRole(RELAYER_ROLE) whenNotPaused returns (uint64 planId) {
        _claimRequest(requestId);
        try fareToken.permit(traveler, address(this), maxPrice, deadline, v, r, s) {} catch {}
        return _purchase(requestId, traveler, bundleId, validFrom, maxPrice, 0);
    }

    /// @notice Gasless purchase at a concession price. `concession` must be signed (EIP-712,
    ///         domain "Kippu PlanMarket" v1) by a CONCESSION_ISSUER_ROLE account, name the
    ///         traveler, be unexpired and unused. All legs are minted non-transferable.
    function buyWithPermitAndConcession(
        bytes32 requestId,
        address traveler,
        uint32 bundleId,
        uint64 validFrom,
        uint256 maxPrice,
        PermitSig calldata permit,
        Concession calldata concession,
        bytes calldata concessionSig
    ) external onlyRole(RELAYER_ROLE) whenNotPaused returns (uint64 planId) {
        // the request first: a purchase sent again is told it is done, not that its attestation was used
        _claimRequest(requestId);
        _useConcession(traveler, concession, concessionSig);
        try fareToken.permit(traveler, address(this), maxPrice, permit.deadline, permit.v, permit.r, permit.s) {}
            catch {}
        planId = _purchase(requestId, traveler, bundleId, validFrom, maxPrice, concession.discountBps);
        emit ConcessionApplied(planId, concession.nonce, concession.kind, concession.discountBps);
    }

    /// @notice Refund an unused ticket of a refundable product before its refund deadline; FARE
    ///         always goes to the holder. A relayer may refund any time in the window. The holder
    ///         may refund directly only while the ticket is not yet valid (no gate admits it yet):
    ///         rides reach this chain in batches some time after the taps, so from validFrom on only
    ///         the relayer (Kippu, which checks the taps it has recorded first) can tell it is unused.
    function refund(uint256 ticketId) external whenNotPaused returns (uint256 amount) {
        address holder = ticketContract.ownerOf(ticketId);
        bool relayed = hasRole(RELAYER_ROLE, msg.sender);
        if (msg.sender != holder && !relayed) revert NotTicketHolder(ticketId, msg.sender);
        RefundSlot memory r = _refunds[ticketId];
        amount = r.amount;
        if (amount == 0) revert NotRefundable(ticketId);
        if (block.timestamp >= r.deadline) revert RefundWindowClosed(ticketId);
        Ticket.TicketData memory t = ticketContract.ticketData(ticketId);
        if (t.flags & ticketContract.FLAG_USED() != 0) revert TicketAlreadyUsed(ticketId);
        if (!relayed && block.timestamp >= t.validFrom) revert RefundNeedsRelayer(ticketId, t.validFrom);

        delete _refunds[ticketId];
        ticketContract.burn(ticketId); // a burnt ticket has no delay cover any more
        clearingContract.refund(t.operatorId, holder, amount);
        emit TicketRefunded(ticketId, holder, t.operatorId, amount);
    }

    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ------------------------------------------------------------------ internals

    /// @dev refuses a request id already used (before any permit or attestation is spent)
    function _claimRequest(bytes32 requestId) private view {
        if (requestId == bytes32(0)) revert ZeroRequestId();
        uint64 done = _purchases[requestId];
        if (done != 0) revert PurchaseAlreadyMade(requestId, done);
    }

    function _useConcession(address traveler, Concession calldata c, bytes calldata sig) private {
        if (c.kind == 0 || c.kind > 3) revert InvalidConcession();
        uint16 maxBps = _maxConcessionBps;
        if (c.discountBps > maxBps) revert ConcessionAboveMax(c.discountBps, maxBps);
        if (c.holder != traveler) revert ConcessionWrongHolder(c.holder, traveler);
        if (block.timestamp >= c.expiry) revert ConcessionExpired(c.expiry);
        if (_concessionUsed[c.nonce]) revert ConcessionReplayed(c.nonce);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(concessionDigest(c), sig);
        if (err != ECDSA.RecoverError.NoError || !hasRole(CONCESSION_ISSUER_ROLE, signer)) {
            revert UntrustedConcessionIssuer(signer);
        }
        _concessionUsed[c.nonce] = true;
    }

    /// @dev at most 100%: a larger discount would underflow the price
    function _setMaxConcessionBps(uint16 maxBps) private {
        if (maxBps > BPS) revert DiscountTooHigh(maxBps);
        _maxConcessionBps = maxBps;
        emit MaxConcessionSet(maxBps);
    }

    function _quote(uint32 bundleId, uint16 concessionBps)
        private
        view
        returns (uint256 price, uint256[] memory shares, uint32[] memory ids, ProductSlot[] memory ps)
    {
        Bundle storage b = _bundles[bundleId];
        ids = b.productIds;
        uint256 n = ids.length;
        if (n == 0) revert UnknownBundle(bundleId);

        ps = new ProductSlot[](n);
        uint256 listSum;
        for (uint256 i; i < n; ++i) {
            ps[i] = _products[ids[i]];
            listSum += ps[i].price;
        }
        price = listSum * (BPS - b.discountBps) / BPS;
        if (concessionBps != 0) price = price * (BPS - concessionBps) / BPS;

        shares = new uint256[](n);
        if (listSum == 0) return (price, shares, ids, ps);
        uint256 allocated;
        for (uint256 i; i + 1 < n; ++i) {
            uint256 share = Math.mulDiv(price, ps[i].price, listSum); // 512-bit intermediate
            shares[i] = share;
            allocated += share;
        }
        shares[n - 1] = price - allocated;
    }

    function _purchase(
        bytes32 requestId,
        address traveler,
        uint32 bundleId,
        uint64 validFrom,
        uint256 maxPrice,
        uint16 concessionBps
    ) private returns (uint64 planId) {
        (uint256 price, uint256[] memory shares, uint32[] memory ids, ProductSlot[] memory ps) =
            _quote(bundleId, concessionBps);
        if (price > maxPrice) revert PriceAboveMax(price, maxPrice);
        if (validFrom == 0) validFrom = uint64(block.timestamp);
        planId = _nextPlanId++;
        _purchases[requestId] = planId;

        IERC20(address(fareToken)).safeTransferFrom(traveler, address(clearingContract), price);
        emit PlanPurchased(planId, traveler, bundleId, price, validFrom);

        Ticket.TicketData[] memory legs = _legs(planId, validFrom, ids, ps, concessionBps != 0);
        uint256 firstId = ticketContract.mintBatch(traveler, legs);
        _credit(planId, ps, shares);

        for (uint256 i; i < ids.length; ++i) {
            _finishLeg(planId, traveler, firstId + i, ids[i], ps[i], shares[i], legs[i]);
        }
    }

    function _finishLeg(
        uint64 planId,
        address traveler,
        uint256 ticketId,
        uint32 productId,
        ProductSlot memory p,
        uint256 share,
        Ticket.TicketData memory t
    ) private {
        emit LegSold(planId, ticketId, p.operatorId, productId, share);
        if (p.flags & P_INSURED != 0) {
            uint64 coverUntil = t.validity == 1 ? uint64(t.validUntil) + p.duration : t.validUntil;
            insuranceContract.coverTicket(ticketId, traveler, t.validFrom, coverUntil);
        }
        if (p.flags & P_REFUNDABLE != 0) {
            ProductTail memory tail = _productTails[productId];
            uint256 amount = share * tail.refundBps / BPS;
            if (amount != 0) {
                uint256 deadline = Math.min(uint256(t.validFrom) + tail.refundWindow, t.validUntil);
                _refunds[ticketId] = RefundSlot({amount: uint128(amount), deadline: uint40(deadline)});
            }
        }
    }

    function _legs(uint64 planId, uint64 validFrom, uint32[] memory ids, ProductSlot[] memory ps, bool concession)
        private
        pure
        returns (Ticket.TicketData[] memory legs)
    {
        uint256 n = ids.length;
        legs = new Ticket.TicketData[](n);
        for (uint256 i; i < n; ++i) {
            ProductSlot memory p = ps[i];
            uint256 until = uint256(validFrom) + (p.validity == 1 ? p.activationWindow : p.duration);
            if (until > type(uint40).max) revert ValidityOverflow();
            uint8 flags = (p.flags & P_TRANSFERABLE != 0 && !concession ? 1 : 0) | (p.flags & P_INSURED != 0 ? 4 : 0)
                | (concession ? 8 : 0);
            legs[i] = Ticket.TicketData({
                operatorId: p.operatorId,
                productId: ids[i],
                planId: uint40(planId),
                validFrom: uint40(validFrom),
                validUntil: uint40(until),
                ridesLeft: p.rides,
                validity: p.validity,
                flags: flags,
                rollingDays: p.validity == 1 ? uint16(p.duration / 1 days) : 0,
                legIndex: 0
            });
        }
    }

    /// @dev one Clearing call per purchase, one credit per distinct operator
    function _credit(uint64 planId, ProductSlot[] memory ps, uint256[] memory shares) private {
        uint256 n = ps.length;
        uint32[] memory ops = new uint32[](n);
        uint256[] memory amounts = new uint256[](n);
        uint256 m;
        for (uint256 i; i < n; ++i) {
            uint32 op = ps[i].operatorId;
            uint256 j;
            while (j < m && ops[j] != op) ++j;
            if (j == m) {
                ops[m] = op;
                ++m;
            }
            amounts[j] += shares[i];
        }
        assembly ("memory-safe") {
            mstore(ops, m)
            mstore(amounts, m)
        }
        clearingContract.creditBatch(planId, ops, amounts);
    }
}
