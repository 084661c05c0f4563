// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Vm.sol";
import {Fixture} from "./utils/Fixture.sol";
import {Clearing} from "../src/Clearing.sol";
import {FareToken} from "../src/FareToken.sol";

contract ClearingTest is Fixture {
    address internal mkt = makeAddr("mkt");

    function setUp() public override {
        super.setUp();
        bytes32 role = clearing.MARKET_ROLE();
        vm.prank(admin);
        clearing.grantRole(role, mkt);
    }

    /// @dev what the market does: transfer into escrow, then credit
    function _escrowAndCredit(uint64 planId, uint32 op, uint256 amount) internal {
        fund(address(clearing), amount);
        vm.prank(mkt);
        clearing.credit(planId, op, amount);
    }

    function test_InitialState() public view {
        assertEq(address(clearing.fareToken()), address(fare));
        assertEq(clearing.currentPeriod(), 1);
        assertEq(clearing.totalUnpaid(), 0);
        assertEq(clearing.MARKET_ROLE(), keccak256("MARKET_ROLE"));
        assertEq(clearing.SETTLER_ROLE(), keccak256("SETTLER_ROLE"));
        assertEq(clearing.ANCHOR_ROLE(), keccak256("ANCHOR_ROLE"));
        assertEq(clearing.CATALOG_ROLE(), keccak256("CATALOG_ROLE"));
        assertEq(address(clearing.insuranceContract()), address(insurance));
        uint32[] memory ids = clearing.operatorIds();
        assertEq(ids.length, 3);
        assertEq(ids[0], OP_RAIL);
        assertEq(ids[2], OP_BIKE);
        assertEq(clearing.operatorPayee(OP_BUS), busPayee);
    }

    function test_RevertWhen_ConstructedWithZeroFare() public {
        vm.expectRevert(Clearing.ZeroAddress.selector);
        new Clearing(admin, FareToken(address(0)), insurance);
    }

    function test_SetOperator() public {
        vm.expectEmit(true, false, false, true, address(clearing));
        emit Clearing.OperatorSet(9, stranger);
        vm.prank(catalog);
        clearing.setOperator(9, stranger);
        assertEq(clearing.operatorIds().length, 4);
        assertEq(clearing.operatorPayee(9), stranger);

        // changing a payee (the admin's call) does not register the operator twice
        vm.prank(admin);
        clearing.setOperator(9, busPayee);
        assertEq(clearing.operatorIds().length, 4);
        assertEq(clearing.operatorPayee(9), busPayee);
    }

    function test_RevertWhen_SetOperatorZeroPayee() public {
        vm.prank(catalog);
        vm.expectRevert(Clearing.ZeroAddress.selector);
        clearing.setOperator(9, address(0));
    }

    function test_RevertWhen_SetOperatorUnauthorized() public {
        bytes32 role = clearing.CATALOG_ROLE();
        vm.prank(stranger);
        vm.expectRevert(unauthorized(stranger, role));
        clearing.setOperator(9, stranger);
        // registering is catalogue work, not the admin's
        vm.prank(admin);
        vm.expectRevert(unauthorized(admin, role));
        clearing.setOperator(9, stranger);
    }

    /// @dev the catalogue key registers operators but cannot re-point a registered operator's payee
    ///      (that would hand it the operator's whole unpaid claim)
    function test_RevertWhen_CatalogChangesPayee() public {
        _escrowAndCredit(1, OP_BUS, 50);
        vm.prank(catalog);
        vm.expectRevert(unauthorized(catalog, bytes32(0)));
        clearing.setOperator(OP_BUS, stranger);
        assertEq(clearing.operatorPayee(OP_BUS), busPayee);
        vm.prank(settler);
        clearing.closePeriod(1);
        assertEq(fare.balanceOf(busPayee), 50);
        assertEq(fare.balanceOf(stranger), 0);
    }

    function test_Credit() public {
        fund(address(clearing), 300);
        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Credited(5, OP_BUS, 120);
        vm.startPrank(mkt);
        clearing.credit(5, OP_BUS, 120);
        clearing.credit(5, OP_BIKE, 180);
        vm.stopPrank();
        assertEq(clearing.unpaid(OP_BUS), 120);
        assertEq(clearing.unpaid(OP_BIKE), 180);
        assertEq(clearing.unpaid(OP_RAIL), 0);
        assertEq(clearing.totalUnpaid(), 300);
    }

    function test_RevertWhen_CreditUnknownOperator() public {
        fund(address(clearing), 100);
        vm.prank(mkt);
        vm.expectRevert(abi.encodeWithSelector(Clearing.UnknownOperator.selector, uint32(77)));
        clearing.credit(1, 77, 100);
    }

    function test_RevertWhen_CreditWithoutEscrow() public {
        fund(address(clearing), 100);
        vm.startPrank(mkt);
        clearing.credit(1, OP_BUS, 60);
        vm.expectRevert(abi.encodeWithSelector(Clearing.InsufficientEscrow.selector, 100, 101));
        clearing.credit(1, OP_BUS, 41);
        vm.stopPrank();
    }

    function test_RevertWhen_CreditUnauthorized() public {
        bytes32 role = clearing.MARKET_ROLE();
        vm.prank(admin);
        vm.expectRevert(unauthorized(admin, role));
        clearing.credit(1, OP_BUS, 0);
    }

    function test_ClosePeriod() public {
        _escrowAndCredit(1, OP_RAIL, 900);
        _escrowAndCredit(1, OP_BIKE, 250);
        _escrowAndCredit(2, OP_RAIL, 100);

        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Payout(1, OP_RAIL, railPayee, 1000);
        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Payout(1, OP_BIKE, bikePayee, 250);
        vm.expectEmit(true, false, false, true, address(clearing));
        emit Clearing.PeriodClosed(1, 1250);
        vm.recordLogs();
        vm.prank(settler);
        uint64 closed = clearing.closePeriod(1);

        assertEq(closed, 1);
        assertEq(clearing.currentPeriod(), 2);
        assertEq(fare.balanceOf(railPayee), 1000);
        assertEq(fare.balanceOf(bikePayee), 250);
        assertEq(fare.balanceOf(busPayee), 0);
        assertEq(fare.balanceOf(address(clearing)), 0);
        assertEq(clearing.totalUnpaid(), 0);
        assertEq(clearing.unpaid(OP_RAIL), 0);

        // the bus operator (nothing owed) gets no Payout event
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 payouts;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(clearing) && logs[i].topics[0] == Clearing.Payout.selector) ++payouts;
        }
        assertEq(payouts, 2);
    }

    function test_ClosePeriodEmpty() public {
        vm.expectEmit(true, false, false, true, address(clearing));
        emit Clearing.PeriodClosed(1, 0);
        vm.prank(settler);
        assertEq(clearing.closePeriod(1), 1);
        vm.prank(settler);
        assertEq(clearing.closePeriod(2), 2);
        assertEq(clearing.currentPeriod(), 3);
    }

    function test_ClosePeriodUsesCurrentPayee() public {
        _escrowAndCredit(1, OP_BUS, 50);
        vm.prank(admin);
        clearing.setOperator(OP_BUS, stranger);
        vm.prank(settler);
        clearing.closePeriod(1);
        assertEq(fare.balanceOf(stranger), 50);
    }

    /// @dev a close names its period: a re-sent or concurrent close of the same period fails and
    ///      pays nothing twice
    function test_RevertWhen_ClosePeriodReplayed() public {
        _escrowAndCredit(1, OP_RAIL, 900);
        vm.prank(settler);
        clearing.closePeriod(1);
        assertEq(fare.balanceOf(railPayee), 900);
        _escrowAndCredit(2, OP_RAIL, 100); // owed in period 2
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(Clearing.WrongPeriod.selector, 1, 2));
        clearing.closePeriod(1);
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(Clearing.WrongPeriod.selector, 3, 2));
        clearing.closePeriod(3); // nor can a close run ahead
        assertEq(clearing.currentPeriod(), 2);
        assertEq(clearing.unpaid(OP_RAIL), 100);
        assertEq(fare.balanceOf(railPayee), 900);
    }

    function testFuzz_ClosePeriodOnlyCurrent(uint64 given, uint8 closes) public {
        closes = uint8(bound(closes, 0, 5));
        given = uint64(bound(given, 0, 8)); // around the current period, which it hits often
        for (uint64 p = 1; p <= closes; ++p) {
            vm.prank(settler);
            clearing.closePeriod(p);
        }
        uint64 current = uint64(closes) + 1;
        vm.prank(settler);
        if (given == current) {
            assertEq(clearing.closePeriod(given), current);
            assertEq(clearing.currentPeriod(), current + 1);
        } else {
            vm.expectRevert(abi.encodeWithSelector(Clearing.WrongPeriod.selector, given, current));
            clearing.closePeriod(given);
            assertEq(clearing.currentPeriod(), current);
        }
    }

    function test_RevertWhen_ClosePeriodUnauthorized() public {
        bytes32 role = clearing.SETTLER_ROLE();
        vm.prank(admin);
        vm.expectRevert(unauthorized(admin, role));
        clearing.closePeriod(1);
    }

    function test_AnchorTapBatch() public {
        bytes32 root = keccak256("root-1");
        vm.expectEmit(true, false, false, true, address(clearing));
        emit Clearing.TapBatchAnchored(1, root, 420);
        vm.startPrank(anchor);
        assertEq(clearing.anchorTapBatch(root, 420), 1);
        assertEq(clearing.anchorTapBatch(keccak256("root-2"), 1), 2);
        vm.stopPrank();
    }

    /// Issue 20: the root is the batch's key; anchoring it again (a re-sent anchor) is refused.
    function test_RevertWhen_AnchorSentAgain() public {
        bytes32 root = keccak256("root");
        vm.startPrank(anchor);
        assertEq(clearing.anchorTapBatch(root, 3), 1);
        vm.expectRevert(abi.encodeWithSelector(Clearing.BatchAlreadyAnchored.selector, root, 1));
        clearing.anchorTapBatch(root, 3);
        vm.stopPrank();
        assertEq(clearing.batchOf(root), 1);
        assertEq(clearing.batchRoot(2), bytes32(0), "no second batch");
        assertEq(clearing.batchOf(keccak256("other")), 0);
    }

    function test_RevertWhen_AnchorUnauthorized() public {
        bytes32 role = clearing.ANCHOR_ROLE();
        vm.prank(settler);
        vm.expectRevert(unauthorized(settler, role));
        clearing.anchorTapBatch(bytes32(0), 0);
    }

    function testFuzz_ClosePeriodPaysEverything(uint64 a, uint64 b, uint64 c) public {
        _escrowAndCredit(1, OP_RAIL, uint256(a) + 1);
        _escrowAndCredit(1, OP_BUS, uint256(b) + 1);
        _escrowAndCredit(1, OP_BIKE, uint256(c) + 1);
        uint256 total = clearing.totalUnpaid();
        vm.prank(settler);
        clearing.closePeriod(1);
        assertEq(fare.balanceOf(railPayee) + fare.balanceOf(busPayee) + fare.balanceOf(bikePayee), total);
        assertEq(fare.balanceOf(address(clearing)), 0);
        assertEq(clearing.totalUnpaid(), 0);
    }
}
