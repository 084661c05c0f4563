// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {PlanMarket} from "../src/PlanMarket.sol";
import {Ticket} from "../src/Ticket.sol";
import {Clearing} from "../src/Clearing.sol";
import {DelayInsurance} from "../src/DelayInsurance.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

/// @dev Validity kinds, transferability, refunds, concessions, quorum insurance,
///      pool caps, voucher categories and tap proofs.
contract FeaturesTest is Fixture {
    uint32 internal constant P_ROLL = 50; // 7-day rolling pass, activate within 30 days
    uint32 internal constant P_CARNET = 51; // 10 rides within 90 days, refundable 80% for 2 days
    uint32 internal constant P_REFUND_INS = 52; // insured, refundable 100% for 1 day
    uint32 internal constant B_ROLL = 500;
    uint32 internal constant B_CARNET = 501;
    uint32 internal constant B_INS = 502;

    uint256 internal issuerKey = 0x155;
    address internal issuer;
    address internal friend = makeAddr("friend");
    uint256 internal constant AHEAD = 1 hours;

    function setUp() public override {
        super.setUp();
        issuer = vm.addr(issuerKey);
        bytes32 issuerRole = market.CONCESSION_ISSUER_ROLE();
        vm.prank(admin);
        market.grantRole(issuerRole, issuer);
        vm.startPrank(catalog);
        PlanMarket.ProductConfig memory c = fixedProduct(OP_RAIL, 2000, 7 days, type(uint32).max, false);
        c.validity = 1;
        c.activationWindow = 30 days;
        c.zone = 7;
        market.setProduct(P_ROLL, c);
        c = fixedProduct(OP_BUS, 1000, 90 days, 10, false);
        c.validity = 2;
        c.refundBps = 8000;
        c.refundWindow = 2 days;
        market.setProduct(P_CARNET, c);
        c = fixedProduct(OP_RAIL, 500, 1 days, 2, true);
        c.refundBps = 10_000;
        c.refundWindow = 1 days;
        market.setProduct(P_REFUND_INS, c);
        market.setBundle(B_ROLL, _ids(P_ROLL), 0);
        market.setBundle(B_CARNET, _ids(P_CARNET), 0);
        market.setBundle(B_INS, _ids(P_REFUND_INS), 0);
        vm.stopPrank();
        fund(traveler, 100_000);
        vm.prank(traveler);
        fare.approve(address(market), type(uint256).max);
    }

    function _ids(uint32 a) internal pure returns (uint32[] memory ids) {
        ids = new uint32[](1);
        ids[0] = a;
    }

    function _buy(uint32 bundleId) internal returns (uint256 firstTicket) {
        firstTicket = ticket.nextTicketId();
        vm.prank(traveler);
        market.buy(_rid(), bundleId, 0, type(uint256).max);
    }

    /// @dev bought for a start `AHEAD` from now: the holder may refund it until then
    function _buyAhead(uint32 bundleId) internal returns (uint256 firstTicket) {
        firstTicket = ticket.nextTicketId();
        vm.prank(traveler);
        market.buy(_rid(), bundleId, uint64(block.timestamp + AHEAD), type(uint256).max);
    }

    // ------------------------------------------------------------------ products

    function test_ProductView() public view {
        PlanMarket.Product memory p = market.product(P_ROLL);
        assertEq(p.zone, 7);
        assertEq(p.validity, 1);
        assertEq(p.activationWindow, 30 days);
        assertTrue(p.transferable);
        assertTrue(p.active);
        p = market.product(P_CARNET);
        assertEq(p.refundBps, 8000);
        assertEq(p.refundWindow, 2 days);
    }

    function test_RevertWhen_SetProductInvalid() public {
        vm.startPrank(catalog);
        PlanMarket.ProductConfig memory c = fixedProduct(OP_RAIL, 1, 1 days, 1, false);
        c.validity = 3;
        vm.expectRevert(PlanMarket.InvalidProduct.selector);
        market.setProduct(1, c);
        c.validity = 0;
        c.refundBps = 10_001;
        vm.expectRevert(PlanMarket.InvalidProduct.selector);
        market.setProduct(1, c);
        c.refundBps = 0;
        c.price = uint128(type(uint96).max) + 1;
        vm.expectRevert(PlanMarket.InvalidProduct.selector);
        market.setProduct(1, c);
        c.price = 1;
        c.validity = 1; // rolling without activation window
        vm.expectRevert(PlanMarket.InvalidDuration.selector);
        market.setProduct(1, c);
        c.activationWindow = 1 days;
        c.duration = 1 days + 1; // not whole days
        vm.expectRevert(PlanMarket.InvalidDuration.selector);
        market.setProduct(1, c);
        c.validity = 2;
        c.rides = type(uint32).max; // RIDES needs a finite count
        vm.expectRevert(PlanMarket.InvalidProduct.selector);
        market.setProduct(1, c);
        c.rides = 0;
        vm.expectRevert(PlanMarket.InvalidProduct.selector);
        market.setProduct(1, c);
        vm.stopPrank();
    }

    function test_RollingStartsAtFirstRide() public {
        uint256 id = _buy(B_ROLL);
        Ticket.TicketData memory d = ticket.ticketData(id);
        assertEq(d.validity, 1);
        assertEq(d.validUntil, block.timestamp + 30 days); // activation deadline
        assertEq(d.rollingDays, 7);
        vm.warp(block.timestamp + 10 days);
        uint256 start = block.timestamp;
        vm.expectEmit(address(ticket));
        emit Ticket.TicketActivated(id, uint64(start), uint64(start + 7 days));
        assertEq(ride(id), 1);
        d = ticket.ticketData(id);
        assertEq(d.validFrom, start);
        assertEq(d.validUntil, start + 7 days);
        vm.warp(start + 7 days - 1);
        assertEq(ride(id), 1); // second ride keeps the window
        assertEq(ticket.ticketData(id).validUntil, start + 7 days);
        vm.warp(start + 7 days);
        assertEq(ride(id), 0); // expired
    }

    /// @dev the window starts at the tap, not when its batch reaches the chain
    function test_RollingStartsAtTapTime() public {
        uint256 id = _buy(B_ROLL);
        uint256 tap = block.timestamp + 2 days;
        vm.warp(tap + 6 hours); // the batch with the tap lands later
        vm.expectEmit(address(ticket));
        emit Ticket.TicketActivated(id, uint64(tap), uint64(tap + 7 days));
        assertEq(rideAt(id, tap), 1);
        Ticket.TicketData memory d = ticket.ticketData(id);
        assertEq(d.validFrom, tap);
        assertEq(d.validUntil, tap + 7 days);
    }

    function test_RollingNotActivatedInTime() public {
        uint256 id = _buy(B_ROLL);
        vm.warp(block.timestamp + 30 days);
        assertEq(ride(id), 0); // expired: the activation window is over
        assertEq(ticket.ticketData(id).flags & ticket.FLAG_USED(), 0);
    }

    function test_RidesCarnet() public {
        uint256 id = _buy(B_CARNET);
        Ticket.TicketData memory d = ticket.ticketData(id);
        assertEq(d.validity, 2);
        assertEq(d.ridesLeft, 10);
        assertEq(d.validUntil, block.timestamp + 90 days);
        for (uint256 i; i < 10; ++i) {
            vm.warp(block.timestamp + 5 days);
            assertEq(ride(id), 1);
        }
        assertEq(ride(id), 0); // no rides left
    }

    // ------------------------------------------------------------------ ticket ownership

    function test_BatchLazyOwnershipAndHeadTransfer() public {
        vm.prank(traveler);
        market.buy(_rid(), BUNDLE, 0, type(uint256).max);
        assertEq(ticket.balanceOf(traveler), 3);
        for (uint256 id = 1; id <= 3; ++id) {
            assertEq(ticket.ownerOf(id), traveler);
        }
        vm.prank(traveler);
        ticket.transferFrom(traveler, friend, 1); // head leaves: legs 2,3 stay with traveler
        assertEq(ticket.ownerOf(1), friend);
        assertEq(ticket.ownerOf(2), traveler);
        assertEq(ticket.ownerOf(3), traveler);
        vm.prank(traveler);
        ticket.transferFrom(traveler, friend, 3);
        assertEq(ticket.ownerOf(3), friend);
        assertEq(ticket.balanceOf(traveler), 1);
        assertEq(ticket.balanceOf(friend), 2);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidOwner.selector, address(0)));
        ticket.balanceOf(address(0));
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 4));
        ticket.ownerOf(4);
    }

    function test_RevertWhen_MintBatchInvalid() public {
        bytes32 role = ticket.MINTER_ROLE();
        vm.prank(admin);
        ticket.grantRole(role, address(this));
        Ticket.TicketData[] memory legs = new Ticket.TicketData[](0);
        vm.expectRevert(Ticket.InvalidBatch.selector);
        ticket.mintBatch(traveler, legs);
        legs = new Ticket.TicketData[](1);
        legs[0].validUntil = 10;
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidReceiver.selector, address(0)));
        ticket.mintBatch(address(0), legs);
        legs[0].validity = 1; // rolling with 0 days
        vm.expectRevert(Ticket.InvalidTicket.selector);
        ticket.mintBatch(traveler, legs);
        legs[0].validity = 0;
        legs[0].validFrom = 10;
        vm.expectRevert(Ticket.InvalidWindow.selector);
        ticket.mintBatch(traveler, legs);
    }

    // ------------------------------------------------------------------ refunds

    function test_Refund() public {
        uint256 id = _buyAhead(B_CARNET);
        (uint256 amount, uint64 deadline) = market.refundable(id);
        assertEq(amount, 800);
        assertEq(deadline, block.timestamp + AHEAD + 2 days);
        uint256 before = fare.balanceOf(traveler);
        vm.expectEmit(address(market));
        emit PlanMarket.TicketRefunded(id, traveler, OP_BUS, 800);
        vm.prank(traveler);
        assertEq(market.refund(id), 800);
        assertEq(fare.balanceOf(traveler), before + 800);
        assertEq(clearing.unpaid(OP_BUS), 200);
        assertEq(clearing.totalUnpaid(), fare.balanceOf(address(clearing)));
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, id));
        ticket.ownerOf(id);
        vm.warp(block.timestamp + AHEAD);
        assertEq(ride(id), 0); // burnt: refused as unknown
        vm.expectRevert(abi.encodeWithSelector(Ticket.UnknownTicket.selector, id));
        ticket.ticketData(id);
    }

    function test_RefundByRelayerPaysHolder() public {
        uint256 id = _buy(B_CARNET);
        uint256 before = fare.balanceOf(traveler);
        vm.prank(relayer);
        market.refund(id);
        assertEq(fare.balanceOf(traveler), before + 800);
    }

    function test_RefundInsuredCancelsPolicy() public {
        uint256 id = _buy(B_INS);
        assertEq(insurance.policy(id).holder, traveler);
        vm.prank(relayer);
        market.refund(id);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownPolicy.selector, id));
        insurance.policy(id);
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownPolicy.selector, id));
        insurance.reportDelay(keccak256("d"), id, 60);
    }

    function test_RefundLegOfBundleKeepsOtherLegs() public {
        uint32[] memory ids = new uint32[](2);
        ids[0] = P_REFUND_INS;
        ids[1] = P_CARNET;
        vm.prank(catalog);
        market.setBundle(9, ids, 0);
        uint256 head = _buy(9);
        vm.prank(relayer);
        market.refund(head); // burning the head must not orphan leg 2
        assertEq(ticket.ownerOf(head + 1), traveler);
        assertEq(ticket.balanceOf(traveler), 1);
    }

    function test_RevertWhen_RefundRules() public {
        uint256 id = _buy(B_CARNET);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.NotTicketHolder.selector, id, stranger));
        market.refund(id);

        ride(id);
        vm.prank(traveler);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.TicketAlreadyUsed.selector, id));
        market.refund(id);

        uint256 id2 = _buy(B_CARNET);
        vm.warp(block.timestamp + 2 days);
        vm.prank(traveler);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.RefundWindowClosed.selector, id2));
        market.refund(id2);

        uint256 id3 = _buy(B_ROLL); // refundBps 0
        vm.prank(traveler);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.NotRefundable.selector, id3));
        market.refund(id3);
    }

    function test_RevertWhen_RefundAfterPayout() public {
        uint256 id = _buy(B_CARNET);
        vm.prank(settler);
        clearing.closePeriod(1);
        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(Clearing.InsufficientUnpaid.selector, OP_BUS, 0, 800));
        market.refund(id);
    }

    function test_RevertWhen_RefundPaused() public {
        uint256 id = _buy(B_CARNET);
        vm.prank(pauser);
        market.pause();
        vm.prank(traveler);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        market.refund(id);
    }

    /// @dev once a ride of the ticket is on chain, nobody gets its money back
    function test_RevertWhen_RefundRiddenTicket() public {
        uint256 id = _buy(B_CARNET);
        assertEq(ride(id), 1);
        vm.prank(traveler);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.TicketAlreadyUsed.selector, id));
        market.refund(id);
        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.TicketAlreadyUsed.selector, id));
        market.refund(id);
        assertEq(ticket.ownerOf(id), traveler);
    }

    function test_HolderRefundBeforeValidity() public {
        uint256 id = _buyAhead(B_CARNET);
        vm.warp(block.timestamp + AHEAD - 1);
        uint256 before = fare.balanceOf(traveler);
        vm.prank(traveler);
        assertEq(market.refund(id), 800);
        assertEq(fare.balanceOf(traveler), before + 800);
    }

    /// @dev from validFrom a gate may have let the ticket through in a batch not yet on chain:
    ///      only the relayer, which checks the taps it recorded, refunds then
    function test_RevertWhen_HolderRefundAfterValidityStart() public {
        uint256 id = _buyAhead(B_CARNET);
        uint64 validFrom = uint64(block.timestamp + AHEAD);
        vm.warp(validFrom);
        vm.prank(traveler);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.RefundNeedsRelayer.selector, id, validFrom));
        market.refund(id);
        uint256 id2 = _buy(B_CARNET); // valid from now
        vm.prank(traveler);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.RefundNeedsRelayer.selector, id2, uint64(block.timestamp)));
        market.refund(id2);
        // the relayer refunds the unused ticket, to its holder
        uint256 before = fare.balanceOf(traveler);
        vm.prank(relayer);
        assertEq(market.refund(id), 800);
        assertEq(fare.balanceOf(traveler), before + 800);
    }

    /// @dev a holder's own refund goes through exactly while the ticket is not yet valid
    function testFuzz_HolderRefundOnlyBeforeValidity(uint32 ahead, uint32 wait) public {
        ahead = uint32(bound(ahead, 0, 2 days));
        wait = uint32(bound(wait, 0, 2 days));
        uint256 id = ticket.nextTicketId();
        vm.prank(traveler);
        market.buy(_rid(), B_CARNET, uint64(block.timestamp + ahead), type(uint256).max);
        (, uint64 deadline) = market.refundable(id);
        vm.warp(block.timestamp + wait);
        uint64 validFrom = ticket.ticketData(id).validFrom;
        vm.prank(traveler);
        if (block.timestamp >= deadline) {
            vm.expectRevert(abi.encodeWithSelector(PlanMarket.RefundWindowClosed.selector, id));
        } else if (block.timestamp >= validFrom) {
            vm.expectRevert(abi.encodeWithSelector(PlanMarket.RefundNeedsRelayer.selector, id, validFrom));
        }
        market.refund(id);
    }

    // ------------------------------------------------------------------ concessions

    function _concession(address holder, uint16 bps, bytes32 nonce)
        internal
        view
        returns (PlanMarket.Concession memory c)
    {
        c = PlanMarket.Concession({
            holder: holder, kind: 1, discountBps: bps, expiry: uint64(block.timestamp + 1 days), nonce: nonce
        });
    }

    function _sign(uint256 key, PlanMarket.Concession memory c) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, market.concessionDigest(c));
        return abi.encodePacked(r, s, v);
    }

    function _permit(uint256 price) internal view returns (PlanMarket.PermitSig memory p) {
        p.deadline = block.timestamp + 1 hours;
        (p.v, p.r, p.s) = signPermit(travelerKey, address(market), price, p.deadline);
    }

    function _buyConcession(PlanMarket.Concession memory c, bytes memory sig) internal returns (uint64) {
        (uint256 price,) = market.quoteWithConcession(BUNDLE, c.discountBps);
        PlanMarket.PermitSig memory p = _permit(price);
        vm.prank(relayer);
        return market.buyWithPermitAndConcession(_rid(), traveler, BUNDLE, 0, price, p, c, sig);
    }

    function test_ConcessionPurchase() public {
        PlanMarket.Concession memory c = _concession(traveler, 5000, keccak256("n1"));
        (uint256 full,) = market.quote(BUNDLE);
        (uint256 price, uint256[] memory shares) = market.quoteWithConcession(BUNDLE, 5000);
        assertEq(price, full / 2);
        assertEq(shares[0] + shares[1] + shares[2], price);
        uint256 before = fare.balanceOf(traveler);
        _buyConcession(c, _sign(issuerKey, c));
        assertEq(fare.balanceOf(traveler), before - price);
        assertTrue(market.concessionUsed(c.nonce));
        Ticket.TicketData memory d = ticket.ticketData(1);
        assertEq(d.flags & ticket.FLAG_TRANSFERABLE(), 0);
        assertEq(d.flags & ticket.FLAG_CONCESSION(), ticket.FLAG_CONCESSION());
        vm.prank(traveler);
        vm.expectRevert(abi.encodeWithSelector(Ticket.NonTransferable.selector, 2));
        ticket.transferFrom(traveler, friend, 2);
    }

    function _expectConcessionRevert(PlanMarket.Concession memory c, bytes memory sig, bytes memory err) internal {
        PlanMarket.PermitSig memory p = _permit(10_000);
        vm.prank(relayer);
        vm.expectRevert(err);
        market.buyWithPermitAndConcession(_rid(), traveler, BUNDLE, 0, 10_000, p, c, sig);
    }

    function test_RevertWhen_ConcessionUntrustedSigner() public {
        PlanMarket.Concession memory c = _concession(traveler, 5000, keccak256("n2"));
        _expectConcessionRevert(
            c, _sign(0xBAD, c), abi.encodeWithSelector(PlanMarket.UntrustedConcessionIssuer.selector, vm.addr(0xBAD))
        );
        _expectConcessionRevert(
            c, hex"1234", abi.encodeWithSelector(PlanMarket.UntrustedConcessionIssuer.selector, address(0))
        );
    }

    function test_RevertWhen_ConcessionWrongHolder() public {
        PlanMarket.Concession memory c = _concession(friend, 5000, keccak256("n3"));
        _expectConcessionRevert(
            c, _sign(issuerKey, c), abi.encodeWithSelector(PlanMarket.ConcessionWrongHolder.selector, friend, traveler)
        );
    }

    function test_RevertWhen_ConcessionExpired() public {
        PlanMarket.Concession memory c = _concession(traveler, 5000, keccak256("n4"));
        c.expiry = uint64(block.timestamp);
        _expectConcessionRevert(
            c, _sign(issuerKey, c), abi.encodeWithSelector(PlanMarket.ConcessionExpired.selector, c.expiry)
        );
    }

    function test_RevertWhen_ConcessionBadKindOrDiscount() public {
        PlanMarket.Concession memory c = _concession(traveler, 5000, keccak256("n5"));
        c.kind = 4;
        _expectConcessionRevert(c, _sign(issuerKey, c), abi.encodeWithSelector(PlanMarket.InvalidConcession.selector));
        c.kind = 2;
        c.discountBps = 10_001;
        _expectConcessionRevert(
            c,
            _sign(issuerKey, c),
            abi.encodeWithSelector(PlanMarket.ConcessionAboveMax.selector, 10_001, MAX_CONCESSION_BPS)
        );
    }

    /// @dev a validly signed attestation above the cap is refused: the attestor key alone cannot
    ///      hand out free plans
    function test_RevertWhen_ConcessionAboveMax() public {
        PlanMarket.Concession memory c = _concession(traveler, MAX_CONCESSION_BPS + 1, keccak256("n8"));
        bytes memory sig = _sign(issuerKey, c);
        _expectConcessionRevert(
            c, sig, abi.encodeWithSelector(PlanMarket.ConcessionAboveMax.selector, MAX_CONCESSION_BPS + 1, 5000)
        );
        assertFalse(market.concessionUsed(c.nonce));
        vm.prank(admin);
        market.setMaxConcessionBps(MAX_CONCESSION_BPS + 1);
        _buyConcession(c, sig);
        assertTrue(market.concessionUsed(c.nonce));
    }

    /// @dev any discount above the cap reverts, any at or below it buys
    function testFuzz_ConcessionCap(uint16 maxBps, uint16 bps) public {
        maxBps = uint16(bound(maxBps, 0, 10_000));
        vm.prank(admin);
        market.setMaxConcessionBps(maxBps);
        PlanMarket.Concession memory c = _concession(traveler, bps, keccak256(abi.encode(maxBps, bps)));
        bytes memory sig = _sign(issuerKey, c);
        if (bps > maxBps) {
            _expectConcessionRevert(c, sig, abi.encodeWithSelector(PlanMarket.ConcessionAboveMax.selector, bps, maxBps));
        } else {
            uint256 before = fare.balanceOf(traveler);
            (uint256 price,) = market.quoteWithConcession(BUNDLE, bps);
            _buyConcession(c, sig);
            assertEq(fare.balanceOf(traveler), before - price);
        }
    }

    function test_RevertWhen_ConcessionReplayed() public {
        PlanMarket.Concession memory c = _concession(traveler, 5000, keccak256("n6"));
        bytes memory sig = _sign(issuerKey, c);
        _buyConcession(c, sig);
        _expectConcessionRevert(c, sig, abi.encodeWithSelector(PlanMarket.ConcessionReplayed.selector, c.nonce));
    }

    /// Issue 20: the same concession purchase sent again is told it is done (its request id), not
    /// that its attestation was used, and nothing is bought or spent twice.
    function test_RevertWhen_ConcessionPurchaseSentAgain() public {
        PlanMarket.Concession memory c = _concession(traveler, 5000, keccak256("n8"));
        bytes memory sig = _sign(issuerKey, c);
        PlanMarket.PermitSig memory p = _permit(10_000);
        bytes32 rid = _rid();
        vm.prank(relayer);
        uint64 planId = market.buyWithPermitAndConcession(rid, traveler, BUNDLE, 0, 10_000, p, c, sig);
        uint256 balance = fare.balanceOf(traveler);
        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(PlanMarket.PurchaseAlreadyMade.selector, rid, planId));
        market.buyWithPermitAndConcession(rid, traveler, BUNDLE, 0, 10_000, p, c, sig);
        assertEq(fare.balanceOf(traveler), balance);
        assertEq(market.purchaseOf(rid), planId);
    }

    function test_RevertWhen_ConcessionNotRelayer() public {
        PlanMarket.Concession memory c = _concession(traveler, 5000, keccak256("n7"));
        PlanMarket.PermitSig memory p = _permit(10_000);
        bytes memory sig = _sign(issuerKey, c);
        bytes32 role = market.RELAYER_ROLE();
        vm.prank(stranger);
        vm.expectRevert(unauthorized(stranger, role));
        market.buyWithPermitAndConcession(_rid(), traveler, BUNDLE, 0, 10_000, p, c, sig);
    }

    // ------------------------------------------------------------------ insurance

    function _policy() internal returns (uint256 id) {
        id = _buy(B_INS);
    }

    function test_QuorumVoting() public {
        address oracle2 = makeAddr("oracle2");
        vm.startPrank(admin);
        insurance.setQuorum(2);
        insurance.grantRole(insurance.ORACLE_ROLE(), oracle2);
        vm.stopPrank();
        assertEq(insurance.quorum(), 2);
        uint256 pid = _policy();
        bytes32 d = keccak256("IC 9");
        vm.prank(oracle);
        assertEq(insurance.reportDelay(d, pid, 45), 0); // lone report: nothing issued
        assertEq(insurance.balanceOf(traveler), 0);
        (uint8 n, uint32 minMinutes) = insurance.votes(pid, d);
        assertEq(n, 1);
        assertEq(minMinutes, 45);
        assertTrue(insurance.hasVoted(pid, d, oracle));
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.AlreadyVoted.selector, pid, d, oracle));
        insurance.reportDelay(d, pid, 50);
        vm.prank(oracle2);
        uint256 vid = insurance.reportDelay(d, pid, 20);
        assertEq(vid, 1);
        assertEq(insurance.ownerOf(vid), traveler);
        assertEq(insurance.voucher(vid).delayMinutes, 20); // minimum among the quorum
        assertTrue(insurance.compensated(pid, d));
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.AlreadyCompensated.selector, pid, d));
        insurance.reportDelay(d, pid, 50);
    }

    function test_RollingInsuredCoverFollowsActivation() public {
        PlanMarket.ProductConfig memory c = fixedProduct(OP_RAIL, 900, 3 days, type(uint32).max, true);
        c.validity = 1;
        c.activationWindow = 10 days;
        vm.startPrank(catalog);
        market.setProduct(70, c);
        market.setBundle(70, _ids(70), 0);
        vm.stopPrank();
        uint256 id = _buy(70);
        uint256 t0 = block.timestamp;
        assertEq(insurance.policy(id).validUntil, t0 + 13 days); // not activated yet
        vm.warp(t0 + 1 days);
        ride(id);
        assertEq(insurance.policy(id).validFrom, t0 + 1 days);
        assertEq(insurance.policy(id).validUntil, t0 + 4 days);
        vm.warp(t0 + 4 days);
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.NotCovered.selector, id));
        insurance.reportDelay("late", id, 60);
    }

    function test_NoTicketContractMeansNoTicketCover() public {
        DelayInsurance fresh = new DelayInsurance(admin, defaultTerms());
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownPolicy.selector, 1));
        fresh.policy(1);
        vm.prank(admin);
        vm.expectRevert(DelayInsurance.ZeroAddress.selector);
        fresh.setTicketContract(Ticket(address(0)));
    }

    function test_RevertWhen_QuorumZero() public {
        vm.prank(admin);
        vm.expectRevert(DelayInsurance.InvalidQuorum.selector);
        insurance.setQuorum(0);
    }

    function test_PoolCap() public {
        vm.prank(admin);
        insurance.setPoolCap(VOUCHER_VALUE * 2, 30 days);
        (uint128 cap, uint64 len) = insurance.poolCap();
        assertEq(cap, VOUCHER_VALUE * 2);
        assertEq(len, 30 days);
        uint256 pid = _policy();
        vm.startPrank(oracle);
        insurance.reportDelay("a", pid, 30);
        insurance.reportDelay("b", pid, 30);
        assertEq(insurance.issuedInPeriod(insurance.poolPeriodId()), VOUCHER_VALUE * 2);
        vm.expectRevert(
            abi.encodeWithSelector(DelayInsurance.PoolCapReached.selector, VOUCHER_VALUE * 2, VOUCHER_VALUE * 2)
        );
        insurance.reportDelay("c", pid, 30);
        vm.stopPrank();
        vm.warp(block.timestamp + 30 days); // next pool period, but the 1-day policy is over
        vm.prank(admin);
        vm.expectRevert(DelayInsurance.InvalidTerms.selector);
        insurance.setPoolCap(1, 0);
    }

    function test_RedeemByCategoryBooksPayable() public {
        bytes32 taxi = "taxi";
        vm.startPrank(catalog);
        insurance.setVoucherCategory(taxi);
        insurance.setOperatorCategory(77, taxi);
        vm.stopPrank();
        assertEq(insurance.voucherCategory(), taxi);
        assertEq(insurance.operatorCategory(77), taxi);
        uint256 pid = _policy();
        vm.prank(oracle);
        uint256 vid = insurance.reportDelay("x", pid, 30);
        assertEq(insurance.voucher(vid).category, taxi);
        vm.expectEmit(address(insurance));
        emit DelayInsurance.VoucherRedeemed(vid, 77, VOUCHER_VALUE);
        vm.prank(redeemer);
        insurance.redeem(vid, 77);
        assertEq(insurance.payableTo(77), VOUCHER_VALUE);
        assertEq(insurance.totalPayable(), VOUCHER_VALUE);

        vm.prank(oracle);
        uint256 vid2 = insurance.reportDelay("y", pid, 30);
        vm.prank(redeemer);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.WrongOperator.selector, vid2, 78));
        insurance.redeem(vid2, 78);
        vm.prank(redeemer);
        insurance.redeem(vid2, OP_RAIL); // the terms' operator is always accepted
        assertEq(insurance.payableTo(OP_RAIL), VOUCHER_VALUE);
    }

    function test_RevertWhen_CancelPolicyUnknown() public {
        bytes32 role = insurance.MARKET_ROLE();
        vm.prank(admin);
        insurance.grantRole(role, address(this));
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownPolicy.selector, 99));
        insurance.cancelPolicy(99);
        vm.expectRevert(DelayInsurance.InvalidWindow.selector);
        insurance.openPolicy(99, traveler, 1, uint64(type(uint40).max) + 1);
    }

    // ------------------------------------------------------------------ clearing

    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    function test_VerifyTap() public {
        bytes32[4] memory leaves;
        for (uint256 i; i < 4; ++i) {
            leaves[i] = clearing.tapLeaf(bytes32(i), 100 + i, OP_BUS, uint64(block.timestamp + i));
            assertEq(
                leaves[i],
                keccak256(bytes.concat(keccak256(abi.encode(bytes32(i), 100 + i, OP_BUS, uint64(block.timestamp + i)))))
            );
        }
        bytes32 h01 = _hashPair(leaves[0], leaves[1]);
        bytes32 h23 = _hashPair(leaves[2], leaves[3]);
        bytes32 root = _hashPair(h01, h23);
        vm.prank(anchor);
        uint64 batchId = clearing.anchorTapBatch(root, 4);
        assertEq(clearing.batchRoot(batchId), root);
        bytes32[] memory proof = new bytes32[](2);
        proof[0] = leaves[1];
        proof[1] = h23;
        assertTrue(clearing.verifyTap(batchId, leaves[0], proof));
        assertFalse(clearing.verifyTap(batchId, leaves[2], proof));
        assertFalse(clearing.verifyTap(batchId + 1, leaves[0], proof));
        proof[0] = leaves[3];
        proof[1] = h01;
        assertTrue(clearing.verifyTap(batchId, leaves[2], proof));
    }

    function test_RevertWhen_AnchorZeroRoot() public {
        vm.prank(anchor);
        vm.expectRevert(Clearing.ZeroRoot.selector);
        clearing.anchorTapBatch(bytes32(0), 1);
    }

    function test_RevertWhen_ClearingBatchAndRefundInvalid() public {
        bytes32 role = clearing.MARKET_ROLE();
        vm.prank(admin);
        clearing.grantRole(role, address(this));
        uint32[] memory ops = new uint32[](1);
        uint256[] memory amounts = new uint256[](2);
        vm.expectRevert(Clearing.LengthMismatch.selector);
        clearing.creditBatch(1, ops, amounts);
        amounts = new uint256[](1);
        ops[0] = 99;
        vm.expectRevert(abi.encodeWithSelector(Clearing.UnknownOperator.selector, 99));
        clearing.creditBatch(1, ops, amounts);
        ops[0] = OP_BUS;
        amounts[0] = 1;
        vm.expectRevert(abi.encodeWithSelector(Clearing.InsufficientEscrow.selector, 0, 1));
        clearing.creditBatch(1, ops, amounts);
        vm.expectRevert(Clearing.ZeroAddress.selector);
        clearing.refund(OP_BUS, address(0), 1);
        vm.prank(stranger);
        vm.expectRevert(unauthorized(stranger, role));
        clearing.refund(OP_BUS, stranger, 1);
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_RefundReturnsShareTimesBps(uint96 price, uint16 bps, uint32 wait) public {
        bps = uint16(bound(bps, 1, 10_000));
        price = uint96(bound(price, 1, 50_000));
        PlanMarket.ProductConfig memory c = fixedProduct(OP_BIKE, price, 3 days, 5, false);
        c.refundBps = bps;
        c.refundWindow = 1 days;
        vm.startPrank(catalog);
        market.setProduct(60, c);
        market.setBundle(60, _ids(60), 0);
        vm.stopPrank();
        uint256 id = _buy(60);
        uint256 expected = uint256(price) * bps / 10_000;
        vm.warp(block.timestamp + bound(wait, 0, 2 days));
        uint256 before = fare.balanceOf(traveler);
        bool closed = block.timestamp >= ticket.ticketData(id).validFrom + 1 days;
        vm.prank(relayer);
        if (expected == 0) {
            vm.expectRevert(abi.encodeWithSelector(PlanMarket.NotRefundable.selector, id));
            market.refund(id);
        } else if (closed) {
            vm.expectRevert(abi.encodeWithSelector(PlanMarket.RefundWindowClosed.selector, id));
            market.refund(id);
        } else {
            market.refund(id);
            assertEq(fare.balanceOf(traveler), before + expected);
            assertEq(clearing.unpaid(OP_BIKE), uint256(price) - expected);
        }
        assertEq(fare.balanceOf(address(clearing)), clearing.totalUnpaid());
    }

    function testFuzz_ConcessionPriceSplit(uint16 bps) public {
        bps = uint16(bound(bps, 0, 10_000));
        (uint256 full,) = market.quote(BUNDLE);
        (uint256 price, uint256[] memory shares) = market.quoteWithConcession(BUNDLE, bps);
        assertEq(price, full * (10_000 - bps) / 10_000);
        assertEq(shares[0] + shares[1] + shares[2], price);
    }
}
