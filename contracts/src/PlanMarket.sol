// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {FareToken} from "./FareToken.sol";
import {Ticket} from "./Ticket.sol";
import {Clearing} from "./Clearing.sol";
import {DelayInsurance} from "./DelayInsurance.sol";

/// @title PlanMarket
/// @notice Sells bundles of operator products as one plan in one transaction:
///         takes FARE into Clearing escrow, mints one Ticket per leg, credits each
///         operator its share and opens delay cover for insured legs. Purchases can
///         be gasless: Kippu relays an EIP-2612 permit signed by the traveler.
contract PlanMarket is AccessControl, Pausable {
    using SafeERC20 for IERC20;

    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    uint16 public constant MAX_DISCOUNT_BPS = 5000;
    uint256 private constant BPS = 10_000;

    struct Product {
        uint32 operatorId;
        uint128 price;
        uint64 duration;
        uint32 rides;
        bool insurance;
        bool active;
    }

    struct Bundle {
        uint32[] productIds;
        uint16 discountBps;
    }

    FareToken public immutable fareToken;
    Ticket public immutable ticketContract;
    Clearing public immutable clearingContract;
    DelayInsurance public immutable insuranceContract;

    mapping(uint32 productId => Product) private _products;
    mapping(uint32 bundleId => Bundle) private _bundles;
    uint64 private _nextPlanId = 1;

    event ProductListed(
        uint32 indexed productId,
        uint32 indexed operatorId,
        uint128 price,
        uint64 duration,
        uint32 rides,
        bool insurance
    );
    event BundleListed(uint32 indexed bundleId, uint32[] productIds, uint16 discountBps, uint256 price);
    event PlanPurchased(
        uint64 indexed planId, address indexed traveler, uint32 indexed bundleId, uint256 price, uint64 validFrom
    );
    event LegSold(
        uint64 indexed planId, uint256 indexed ticketId, uint32 indexed operatorId, uint32 productId, uint256 share
    );

    error ZeroAddress();
    error InvalidDuration();
    error EmptyBundle();
    error UnknownProduct(uint32 productId);
    error DiscountTooHigh(uint16 discountBps);
    error UnknownBundle(uint32 bundleId);
    error PriceAboveMax(uint256 price, uint256 maxPrice);

    constructor(address admin, FareToken fare, Ticket ticket, Clearing clearing, DelayInsurance insurance) {
        if (
            address(fare) == address(0) || address(ticket) == address(0) || address(clearing) == address(0)
                || address(insurance) == address(0)
        ) revert ZeroAddress();
        fareToken = fare;
        ticketContract = ticket;
        clearingContract = clearing;
        insuranceContract = insurance;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ------------------------------------------------------------------ catalogue

    function setProduct(
        uint32 productId,
        uint32 operatorId,
        uint128 price,
        uint64 duration,
        uint32 rides,
        bool insurance
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (duration == 0) revert InvalidDuration();
        _products[productId] = Product({
            operatorId: operatorId, price: price, duration: duration, rides: rides, insurance: insurance, active: true
        });
        emit ProductListed(productId, operatorId, price, duration, rides, insurance);
    }

    function setBundle(uint32 bundleId, uint32[] calldata productIds, uint16 discountBps)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (productIds.length == 0) revert EmptyBundle();
        if (discountBps > MAX_DISCOUNT_BPS) revert DiscountTooHigh(discountBps);
        for (uint256 i; i < productIds.length; ++i) {
            if (!_products[productIds[i]].active) revert UnknownProduct(productIds[i]);
        }
        _bundles[bundleId] = Bundle({productIds: productIds, discountBps: discountBps});
        (uint256 price,) = quote(bundleId);
        emit BundleListed(bundleId, productIds, discountBps, price);
    }

    function product(uint32 productId) external view returns (Product memory) {
        return _products[productId];
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
        Bundle storage b = _bundles[bundleId];
        uint256 n = b.productIds.length;
        if (n == 0) revert UnknownBundle(bundleId);

        uint256[] memory listPrices = new uint256[](n);
        uint256 listSum;
        for (uint256 i; i < n; ++i) {
            listPrices[i] = _products[b.productIds[i]].price;
            listSum += listPrices[i];
        }
        price = listSum * (BPS - b.discountBps) / BPS;

        legShares = new uint256[](n);
        if (listSum == 0) return (price, legShares);
        uint256 allocated;
        for (uint256 i; i + 1 < n; ++i) {
            uint256 share = Math.mulDiv(price, listPrices[i], listSum); // 512-bit intermediate
            legShares[i] = share;
            allocated += share;
        }
        legShares[n - 1] = price - allocated;
    }

    // ------------------------------------------------------------------ purchase

    /// @notice Buy a bundle for yourself; needs a prior FARE approval of at least the price.
    function buy(uint32 bundleId, uint64 validFrom, uint256 maxPrice) external whenNotPaused returns (uint64 planId) {
        return _purchase(msg.sender, bundleId, validFrom, maxPrice);
    }

    /// @notice Gasless purchase: Kippu relays the traveler's EIP-2612 permit (value = maxPrice).
    /// @dev The permit is wrapped in try/catch so a front-run permit (already consumed
    ///      nonce) does not block the purchase; transferFrom still enforces the allowance.
    function buyWithPermit(
        address traveler,
        uint32 bundleId,
        uint64 validFrom,
        uint256 maxPrice,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external onlyRole(RELAYER_ROLE) whenNotPaused returns (uint64 planId) {
        try fareToken.permit(traveler, address(this), maxPrice, deadline, v, r, s) {} catch {}
        return _purchase(traveler, bundleId, validFrom, maxPrice);
    }

    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    function _purchase(address traveler, uint32 bundleId, uint64 validFrom, uint256 maxPrice)
        private
        returns (uint64 planId)
    {
        (uint256 price, uint256[] memory shares) = quote(bundleId);
        if (price > maxPrice) revert PriceAboveMax(price, maxPrice);
        if (validFrom == 0) validFrom = uint64(block.timestamp);
        planId = _nextPlanId++;

        IERC20(address(fareToken)).safeTransferFrom(traveler, address(clearingContract), price);
        emit PlanPurchased(planId, traveler, bundleId, price, validFrom);

        uint32[] storage ids = _bundles[bundleId].productIds;
        for (uint256 i; i < ids.length; ++i) {
            _sellLeg(planId, traveler, ids[i], validFrom, shares[i]);
        }
    }

    function _sellLeg(uint64 planId, address traveler, uint32 productId, uint64 validFrom, uint256 share) private {
        Product memory p = _products[productId];
        uint64 validUntil = validFrom + p.duration;
        uint256 ticketId =
            ticketContract.mint(traveler, planId, p.operatorId, productId, validFrom, validUntil, p.rides);
        clearingContract.credit(planId, p.operatorId, share);
        emit LegSold(planId, ticketId, p.operatorId, productId, share);
        if (p.insurance) insuranceContract.openPolicy(ticketId, traveler, validFrom, validUntil);
    }
}
