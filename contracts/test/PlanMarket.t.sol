// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Vm.sol";
import {Fixture} from "./utils/Fixture.sol";
import {PlanMarket} from "../src/PlanMarket.sol";
import {Ticket} from "../src/Ticket.sol";
import {Clearing} from "../src/Clearing.sol";
import {DelayInsurance} from "../src/DelayInsurance.sol";
import {FareToken} from "../src/FareToken.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

contract PlanMarketTest is Fixture {
    // bundle 100: list 1000 + 333 + 250 = 1583, 10% off -> 1424; shares 899 / 299 / 226
    uint256 internal constant BUNDLE_PRICE = 1424;

    function setUp() public override {
        super.setUp();
        fund(traveler, 10_000);
    }

    function _ids(uint32 a) internal pure returns (uint32[] memory ids) {
        ids = new uint32[](1);
        ids[0] = a;
    }

    // ------------------------------------------------------------------ catalogue

    function test_Roles() public view {
        assertEq(market.RELAYER_ROLE(), keccak256("RELAYER_ROLE"));
        assertEq(market.PAUSER_ROLE(), keccak256("PAUSER_ROLE"));
        assertEq(market.CATALOG_ROLE(), keccak256("CATALOG_ROLE"));
        assertEq(market.maxConcessionBps(), MAX_CONCESSION_BPS);
        assertEq(address(market.fareToken()), address(fare));
        assertEq(address(market.ticketContract()), address(ticket));
        assertEq(address(market.clearingContract()), address(clearing));
        assertEq(address(market.insuranceContract()), address(insurance));
    }

    function test_RevertWhen_ConstructedWithZeroAddress() public {
        vm.expectRevert(PlanMarket.ZeroAddress.selector);
        new PlanMarket(admin, FareToken(address(0)), ticket, clearing, insurance, MAX_CONCESSION_BPS);
    }

    function test_SetMaxConcessionBps() public {
        vm.expectEmit(address(market));
        emit PlanMarket.MaxConcessionSet(10_000);
        vm.prank(admin);
        market.setMaxConcessionBps(10_000);
        assertEq(market.maxConcessionBps(), 10_000);
    }

    function test_RevertWhen_SetMaxConcessionBpsInvalid() public {
        bytes32 role = market.DEFAULT_ADMIN_ROLE();
        vm.prank(catalog); // a cap on what the hot keys can do is the admin's to set
        vm.expectRevert(unauthorized(catalog, role));
        market.setMaxConcessionBps(6000);
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.DiscountTooHigh.selector, uint16(10_001)));
        market.setMaxConcessionBps(10_001);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.DiscountTooHigh.selector, uint16(10_001)));
        new PlanMarket(admin, fare, ticket, clearing, insurance, 10_001);
        assertEq(market.maxConcessionBps(), MAX_CONCESSION_BPS);
    }

    function test_SetProduct() public {
        vm.expectEmit(true, true, false, true, address(market));
        emit PlanMarket.ProductListed(40, OP_BUS, 120, 90 minutes, 1, true);
        vm.prank(catalog);
        market.setProduct(40, fixedProduct(OP_BUS, 120, 90 minutes, 1, true));
        PlanMarket.Product memory p = market.product(40);
        assertEq(p.operatorId, OP_BUS);
        assertEq(p.price, 120);
        assertEq(p.duration, 90 minutes);
        assertEq(p.rides, 1);
        assertTrue(p.insurance);
        assertTrue(p.active);
        assertFalse(market.product(41).active);
    }

    function test_RevertWhen_SetProductZeroDuration() public {
        vm.prank(catalog);
        vm.expectRevert(PlanMarket.InvalidDuration.selector);
        market.setProduct(40, fixedProduct(OP_BUS, 120, 0, 1, false));
    }

    function test_RevertWhen_SetProductUnauthorized() public {
        bytes32 role = market.CATALOG_ROLE();
        vm.prank(relayer);
        vm.expectRevert(unauthorized(relayer, role));
        market.setProduct(40, fixedProduct(OP_BUS, 120, 1, 1, false));
        // the cold admin grants the role but does not list products itself
        vm.prank(admin);
        vm.expectRevert(unauthorized(admin, role));
        market.setProduct(40, fixedProduct(OP_BUS, 120, 1, 1, false));
    }

    function test_SetBundle() public {
        uint32[] memory ids = new uint32[](2);
        ids[0] = P_BUS_2;
        ids[1] = P_BIKE_WEEK;
        vm.expectEmit(true, false, false, true, address(market));
        emit PlanMarket.BundleListed(7, ids, 5000, 291); // (333 + 250) / 2, floored
        vm.prank(catalog);
        market.setBundle(7, ids, 5000);
        (uint32[] memory got, uint16 bps) = market.bundleProducts(7);
        assertEq(got.length, 2);
        assertEq(got[1], P_BIKE_WEEK);
        assertEq(bps, 5000);
    }

    function test_RevertWhen_SetBundleEmpty() public {
        vm.prank(catalog);
        vm.expectRevert(PlanMarket.EmptyBundle.selector);
        market.setBundle(7, new uint32[](0), 0);
    }

    function test_RevertWhen_SetBundleUnknownProduct() public {
        uint32[] memory ids = new uint32[](2);
        ids[0] = P_BUS_2;
        ids[1] = 999;
        vm.prank(catalog);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.UnknownProduct.selector, uint32(999)));
        market.setBundle(7, ids, 0);
    }

    function test_RevertWhen_SetBundleDiscountTooHigh() public {
        vm.prank(catalog);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.DiscountTooHigh.selector, uint16(5001)));
        market.setBundle(7, _ids(P_BUS_2), 5001);
    }

    function test_RevertWhen_SetBundleUnauthorized() public {
        bytes32 role = market.CATALOG_ROLE();
        vm.prank(stranger);
        vm.expectRevert(unauthorized(stranger, role));
        market.setBundle(7, _ids(P_BUS_2), 0);
    }

    function test_Quote() public view {
        (uint256 price, uint256[] memory shares) = market.quote(BUNDLE);
        assertEq(price, BUNDLE_PRICE);
        assertEq(shares.length, 3);
        assertEq(shares[0], 899);
        assertEq(shares[1], 299);
        assertEq(shares[2], 226);
    }

    function test_QuoteFreeBundle() public {
        vm.startPrank(catalog);
        market.setProduct(50, fixedProduct(OP_BUS, 0, 1 days, 1, false));
        market.setProduct(51, fixedProduct(OP_BIKE, 0, 1 days, 1, false));
        uint32[] memory ids = new uint32[](2);
        ids[0] = 50;
        ids[1] = 51;
        market.setBundle(8, ids, 0);
        vm.stopPrank();
        (uint256 price, uint256[] memory shares) = market.quote(8);
        assertEq(price, 0);
        assertEq(shares[0] + shares[1], 0);
    }

    function test_RevertWhen_QuoteUnknownBundle() public {
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.UnknownBundle.selector, uint32(5)));
        market.quote(5);
    }

    // ------------------------------------------------------------------ buy

    function test_Buy() public {
        uint64 t0 = uint64(block.timestamp);
        vm.prank(traveler);
        fare.approve(address(market), BUNDLE_PRICE);

        vm.expectEmit(true, true, true, true, address(market));
        emit PlanMarket.PlanPurchased(1, traveler, BUNDLE, BUNDLE_PRICE, t0);
        vm.expectEmit(true, true, true, true, address(market));
        emit PlanMarket.LegSold(1, 1, OP_RAIL, P_RAIL_DAY, 899);
        vm.expectEmit(true, true, true, true, address(market));
        emit PlanMarket.LegSold(1, 2, OP_BUS, P_BUS_2, 299);
        vm.expectEmit(true, true, true, true, address(market));
        emit PlanMarket.LegSold(1, 3, OP_BIKE, P_BIKE_WEEK, 226);
        vm.prank(traveler);
        uint64 planId = market.buy(_rid(), BUNDLE, 0, BUNDLE_PRICE);

        assertEq(planId, 1);
        assertEq(fare.balanceOf(traveler), 10_000 - BUNDLE_PRICE);
        assertEq(fare.balanceOf(address(clearing)), BUNDLE_PRICE);
        assertEq(clearing.totalUnpaid(), BUNDLE_PRICE);
        assertEq(clearing.unpaid(OP_RAIL), 899);
        assertEq(clearing.unpaid(OP_BUS), 299);
        assertEq(clearing.unpaid(OP_BIKE), 226);
        assertEq(fare.allowance(traveler, address(market)), 0);

        assertEq(ticket.balanceOf(traveler), 3);
        Ticket.TicketData memory rail = ticket.ticketData(1);
        assertEq(rail.planId, 1);
        assertEq(rail.operatorId, OP_RAIL);
        assertEq(rail.productId, P_RAIL_DAY);
        assertEq(rail.validFrom, t0);
        assertEq(rail.validUntil, t0 + 1 days);
        assertEq(rail.ridesLeft, type(uint32).max);
        assertEq(ticket.ticketData(3).validUntil, t0 + 7 days);
        assertEq(ticket.ticketData(2).ridesLeft, 2);

        // only the insured rail leg has a policy, keyed by its ticket id
        DelayInsurance.Policy memory p = insurance.policy(1);
        assertEq(p.holder, traveler);
        assertEq(p.validFrom, t0);
        assertEq(p.validUntil, t0 + 1 days);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownPolicy.selector, 2));
        insurance.policy(2);
    }

    function test_BuyEventOrder() public {
        vm.prank(traveler);
        fare.approve(address(market), BUNDLE_PRICE);
        vm.recordLogs();
        vm.prank(traveler);
        market.buy(_rid(), BUNDLE, 0, BUNDLE_PRICE);
        Vm.Log[] memory logs = vm.getRecordedLogs();

        uint256 purchasedAt = type(uint256).max;
        uint256 legs;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(market)) continue;
            if (logs[i].topics[0] == PlanMarket.PlanPurchased.selector) {
                purchasedAt = i;
            } else if (logs[i].topics[0] == PlanMarket.LegSold.selector) {
                assertLt(purchasedAt, i, "PlanPurchased must precede LegSold");
                ++legs;
            }
        }
        assertEq(legs, 3);
    }

    function test_BuyExplicitValidFromAndSequentialPlans() public {
        uint64 start = uint64(block.timestamp + 3 days);
        vm.startPrank(traveler);
        fare.approve(address(market), type(uint256).max);
        assertEq(market.buy(_rid(), BUNDLE, start, BUNDLE_PRICE), 1);
        assertEq(market.buy(_rid(), BUNDLE, 0, BUNDLE_PRICE + 1), 2);
        vm.stopPrank();
        assertEq(ticket.ticketData(1).validFrom, start);
        assertEq(ticket.ticketData(1).validUntil, start + 1 days);
        assertEq(ticket.ticketData(4).planId, 2);
        assertEq(ticket.nextTicketId(), 7);
        assertEq(clearing.totalUnpaid(), 2 * BUNDLE_PRICE);
    }

    function test_RevertWhen_BuyUnknownBundle() public {
        vm.prank(traveler);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.UnknownBundle.selector, uint32(1)));
        market.buy(_rid(), 1, 0, 1e9);
    }

    function test_RevertWhen_BuyPriceAboveMax() public {
        vm.startPrank(traveler);
        fare.approve(address(market), type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.PriceAboveMax.selector, BUNDLE_PRICE, BUNDLE_PRICE - 1));
        market.buy(_rid(), BUNDLE, 0, BUNDLE_PRICE - 1);
        vm.stopPrank();
    }

    function test_RevertWhen_BuyWithoutApproval() public {
        vm.prank(traveler);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(market), 0, BUNDLE_PRICE)
        );
        market.buy(_rid(), BUNDLE, 0, BUNDLE_PRICE);
    }

    function test_RevertWhen_BuyInsufficientBalance() public {
        vm.startPrank(stranger);
        fare.approve(address(market), type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, stranger, 0, BUNDLE_PRICE)
        );
        market.buy(_rid(), BUNDLE, 0, BUNDLE_PRICE);
        vm.stopPrank();
    }

    function test_RevertWhen_BuyUnregisteredOperator() public {
        vm.startPrank(catalog);
        market.setProduct(60, fixedProduct(42, 100, 1 days, 1, false));
        market.setBundle(9, _ids(60), 0);
        vm.stopPrank();
        vm.startPrank(traveler);
        fare.approve(address(market), 100);
        vm.expectRevert(abi.encodeWithSelector(Clearing.UnknownOperator.selector, uint32(42)));
        market.buy(_rid(), 9, 0, 100);
        vm.stopPrank();
    }

    function test_RevertWhen_BuyValidFromOverflows() public {
        vm.startPrank(traveler);
        fare.approve(address(market), BUNDLE_PRICE);
        vm.expectRevert(); // checked arithmetic panic on validFrom + duration
        market.buy(_rid(), BUNDLE, type(uint64).max, BUNDLE_PRICE);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ permit

    function test_BuyWithPermit() public {
        uint256 deadline = block.timestamp + 10 minutes;
        uint256 maxPrice = 1500;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(travelerKey, address(market), maxPrice, deadline);

        vm.expectEmit(true, true, true, true, address(market));
        emit PlanMarket.PlanPurchased(1, traveler, BUNDLE, BUNDLE_PRICE, uint64(block.timestamp));
        vm.prank(relayer);
        uint64 planId = market.buyWithPermit(_rid(), traveler, BUNDLE, 0, maxPrice, deadline, v, r, s);

        assertEq(planId, 1);
        assertEq(fare.nonces(traveler), 1);
        assertEq(fare.balanceOf(traveler), 10_000 - BUNDLE_PRICE);
        assertEq(fare.allowance(traveler, address(market)), maxPrice - BUNDLE_PRICE);
        assertEq(ticket.ownerOf(1), traveler);
        assertEq(insurance.policy(1).holder, traveler);
        assertEq(relayer.balance, 0);
        assertEq(fare.balanceOf(relayer), 0);
    }

    // ------------------------------------------------------------------ idempotent purchase (issue 20)

    /// A purchase sent again (re-signed at a new nonce after a drop or a reorganisation) with an
    /// allowance left over must not buy a second plan: the request id refuses it.
    function test_RevertWhen_PurchaseRequestSentAgain() public {
        bytes32 rid = _rid();
        vm.startPrank(traveler);
        fare.approve(address(market), 2 * BUNDLE_PRICE);
        uint64 planId = market.buy(rid, BUNDLE, 0, BUNDLE_PRICE);
        assertEq(market.purchaseOf(rid), planId);
        uint256 balance = fare.balanceOf(traveler);
        uint256 nextTicket = ticket.nextTicketId();
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.PurchaseAlreadyMade.selector, rid, planId));
        market.buy(rid, BUNDLE, 0, BUNDLE_PRICE);
        vm.stopPrank();
        assertEq(fare.balanceOf(traveler), balance);
        assertEq(ticket.nextTicketId(), nextTicket);
        assertEq(fare.balanceOf(address(clearing)), BUNDLE_PRICE);
    }

    /// The relayed path: a permit for twice the price leaves an allowance a replay could spend.
    function test_RevertWhen_RelayedPurchaseSentAgain() public {
        uint256 deadline = block.timestamp + 10 minutes;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(travelerKey, address(market), 2 * BUNDLE_PRICE, deadline);
        bytes32 rid = _rid();
        vm.startPrank(relayer);
        uint64 planId = market.buyWithPermit(rid, traveler, BUNDLE, 0, 2 * BUNDLE_PRICE, deadline, v, r, s);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.PurchaseAlreadyMade.selector, rid, planId));
        market.buyWithPermit(rid, traveler, BUNDLE, 0, 2 * BUNDLE_PRICE, deadline, v, r, s);
        vm.stopPrank();
        assertEq(fare.balanceOf(address(clearing)), BUNDLE_PRICE);
        assertEq(fare.allowance(traveler, address(market)), BUNDLE_PRICE, "the allowance left is not spent");
    }

    function test_RevertWhen_PurchaseRequestIdZero() public {
        vm.startPrank(traveler);
        fare.approve(address(market), BUNDLE_PRICE);
        vm.expectRevert(PlanMarket.ZeroRequestId.selector);
        market.buy(bytes32(0), BUNDLE, 0, BUNDLE_PRICE);
        vm.stopPrank();
    }

    /// Two purchases of the same bundle by the same traveler are two requests: both go through.
    function test_TwoRequestsBuyTwoPlans() public {
        vm.startPrank(traveler);
        fare.approve(address(market), 2 * BUNDLE_PRICE);
        bytes32 a = _rid();
        bytes32 b = _rid();
        assertEq(market.buy(a, BUNDLE, 0, BUNDLE_PRICE), 1);
        assertEq(market.buy(b, BUNDLE, 0, BUNDLE_PRICE), 2);
        vm.stopPrank();
        assertEq(market.purchaseOf(a), 1);
        assertEq(market.purchaseOf(b), 2);
        assertEq(market.purchaseOf(keccak256("never")), 0);
    }

    /// A refund sent again finds the ticket burnt: nothing is paid twice.
    function test_RevertWhen_RefundSentAgain() public {
        PlanMarket.ProductConfig memory c = fixedProduct(OP_BIKE, 1000, 2 days, 3, false);
        c.refundBps = 10_000;
        c.refundWindow = 1 days;
        vm.prank(catalog);
        market.setProduct(91, c);
        uint32[] memory ids = new uint32[](1);
        ids[0] = 91;
        vm.prank(catalog);
        market.setBundle(91, ids, 0);
        vm.startPrank(traveler);
        fare.approve(address(market), 1000);
        market.buy(_rid(), 91, uint64(block.timestamp + 1 hours), 1000);
        uint256 id = ticket.nextTicketId() - 1;
        assertEq(market.refund(id), 1000);
        uint256 balance = fare.balanceOf(traveler);
        vm.expectRevert(abi.encodeWithSignature("ERC721NonexistentToken(uint256)", id));
        market.refund(id);
        vm.stopPrank();
        assertEq(fare.balanceOf(traveler), balance);
    }

    function test_BuyWithPermitFrontRun() public {
        uint256 deadline = block.timestamp + 10 minutes;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(travelerKey, address(market), BUNDLE_PRICE, deadline);
        // someone sees the relayed tx in the mempool and submits the permit first
        vm.prank(stranger);
        fare.permit(traveler, address(market), BUNDLE_PRICE, deadline, v, r, s);

        vm.prank(relayer);
        uint64 planId = market.buyWithPermit(_rid(), traveler, BUNDLE, 0, BUNDLE_PRICE, deadline, v, r, s);
        assertEq(planId, 1);
        assertEq(fare.balanceOf(address(clearing)), BUNDLE_PRICE);
    }

    function test_RevertWhen_BuyWithPermitReplayed() public {
        uint256 deadline = block.timestamp + 10 minutes;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(travelerKey, address(market), BUNDLE_PRICE, deadline);
        vm.startPrank(relayer);
        market.buyWithPermit(_rid(), traveler, BUNDLE, 0, BUNDLE_PRICE, deadline, v, r, s);
        // same signature again: permit fails (nonce used), allowance is spent
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(market), 0, BUNDLE_PRICE)
        );
        market.buyWithPermit(_rid(), traveler, BUNDLE, 0, BUNDLE_PRICE, deadline, v, r, s);
        vm.stopPrank();
        assertEq(fare.balanceOf(traveler), 10_000 - BUNDLE_PRICE);
    }

    function test_RevertWhen_BuyWithPermitExpired() public {
        uint256 deadline = block.timestamp + 10 minutes;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(travelerKey, address(market), BUNDLE_PRICE, deadline);
        vm.warp(deadline + 1);
        vm.prank(relayer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(market), 0, BUNDLE_PRICE)
        );
        market.buyWithPermit(_rid(), traveler, BUNDLE, 0, BUNDLE_PRICE, deadline, v, r, s);
        assertEq(fare.nonces(traveler), 0);
    }

    function test_RevertWhen_BuyWithPermitWrongSigner() public {
        uint256 deadline = block.timestamp + 10 minutes;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(0xB0B, address(market), BUNDLE_PRICE, deadline);
        vm.prank(relayer);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(market), 0, BUNDLE_PRICE)
        );
        market.buyWithPermit(_rid(), traveler, BUNDLE, 0, BUNDLE_PRICE, deadline, v, r, s);
    }

    function test_RevertWhen_BuyWithPermitPriceAboveMax() public {
        uint256 deadline = block.timestamp + 10 minutes;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(travelerKey, address(market), 1000, deadline);
        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.PriceAboveMax.selector, BUNDLE_PRICE, 1000));
        market.buyWithPermit(_rid(), traveler, BUNDLE, 0, 1000, deadline, v, r, s);
    }

    function test_RevertWhen_BuyWithPermitUnauthorized() public {
        uint256 deadline = block.timestamp + 10 minutes;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(travelerKey, address(market), BUNDLE_PRICE, deadline);
        bytes32 role = market.RELAYER_ROLE();
        vm.prank(stranger);
        vm.expectRevert(unauthorized(stranger, role));
        market.buyWithPermit(_rid(), traveler, BUNDLE, 0, BUNDLE_PRICE, deadline, v, r, s);
    }

    // ------------------------------------------------------------------ pause

    function test_PauseBlocksPurchases() public {
        vm.prank(traveler);
        fare.approve(address(market), type(uint256).max);
        vm.prank(pauser);
        market.pause();
        assertTrue(market.paused());

        vm.prank(traveler);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        market.buy(_rid(), BUNDLE, 0, BUNDLE_PRICE);

        uint256 deadline = block.timestamp + 10 minutes;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(travelerKey, address(market), BUNDLE_PRICE, deadline);
        vm.prank(relayer);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        market.buyWithPermit(_rid(), traveler, BUNDLE, 0, BUNDLE_PRICE, deadline, v, r, s);

        vm.prank(pauser);
        market.unpause();
        vm.prank(traveler);
        assertEq(market.buy(_rid(), BUNDLE, 0, BUNDLE_PRICE), 1);
    }

    function test_RevertWhen_PauseUnauthorized() public {
        bytes32 role = market.PAUSER_ROLE();
        vm.prank(admin);
        vm.expectRevert(unauthorized(admin, role));
        market.pause();

        vm.prank(pauser);
        market.pause();
        vm.prank(stranger);
        vm.expectRevert(unauthorized(stranger, role));
        market.unpause();
    }

    function test_RevertWhen_MarketLacksTicketRole() public {
        bytes32 role = ticket.MINTER_ROLE();
        vm.prank(admin);
        ticket.revokeRole(role, address(market));
        vm.startPrank(traveler);
        fare.approve(address(market), BUNDLE_PRICE);
        vm.expectRevert(unauthorized(address(market), role));
        market.buy(_rid(), BUNDLE, 0, BUNDLE_PRICE);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_QuoteSharesSumToPrice(uint128[8] memory prices, uint8 n, uint16 discountBps) public {
        n = uint8(bound(n, 1, 8));
        discountBps = uint16(bound(discountBps, 0, 5000));
        uint32[] memory ids = new uint32[](n);
        uint256 listSum;
        vm.startPrank(catalog);
        for (uint32 i; i < n; ++i) {
            ids[i] = 1000 + i;
            prices[i] = uint128(bound(prices[i], 0, type(uint96).max));
            market.setProduct(ids[i], fixedProduct(OP_BUS, prices[i], 1 days, 1, false));
            listSum += prices[i];
        }
        market.setBundle(77, ids, discountBps);
        vm.stopPrank();

        (uint256 price, uint256[] memory shares) = market.quote(77);
        assertEq(price, listSum * (10_000 - discountBps) / 10_000);
        assertEq(shares.length, n);
        uint256 sum;
        for (uint256 i; i < n; ++i) {
            // All legs free: nothing to share (and no division by a zero list sum).
            if (listSum == 0) assertEq(shares[i], 0);
            else if (i + 1 < n) assertEq(shares[i], Math.mulDiv(price, prices[i], listSum));
            if (i + 1 < n && listSum > 0) assertLe(shares[i], prices[i]);
            sum += shares[i];
        }
        assertEq(sum, price);
    }

    function testFuzz_BuyCreditsExactlyPrice(uint128 a, uint128 b, uint16 discountBps) public {
        a = uint128(bound(a, 0, 1e12));
        b = uint128(bound(b, 0, 1e12));
        discountBps = uint16(bound(discountBps, 0, 5000));
        vm.startPrank(catalog);
        market.setProduct(70, fixedProduct(OP_RAIL, a, 1 days, 1, false));
        market.setProduct(71, fixedProduct(OP_BIKE, b, 1 days, 1, false));
        uint32[] memory ids = new uint32[](2);
        ids[0] = 70;
        ids[1] = 71;
        market.setBundle(70, ids, discountBps);
        vm.stopPrank();

        (uint256 price,) = market.quote(70);
        fund(traveler, price + 1);
        vm.startPrank(traveler);
        fare.approve(address(market), price);
        market.buy(_rid(), 70, 0, price);
        vm.stopPrank();
        assertEq(clearing.totalUnpaid(), price);
        assertEq(clearing.unpaid(OP_RAIL) + clearing.unpaid(OP_BIKE), price);
        assertEq(fare.balanceOf(address(clearing)), price);
    }
}
