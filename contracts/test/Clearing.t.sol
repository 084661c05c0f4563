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
        uint32[] memory ids = clearing.operatorIds();
        assertEq(ids.length, 3);
        assertEq(ids[0], OP_RAIL);
        assertEq(ids[2], OP_BIKE);
        assertEq(clearing.operatorPayee(OP_BUS), busPayee);
    }

    function test_RevertWhen_ConstructedWithZeroFare() public {
        vm.expectRevert(Clearing.ZeroAddress.selector);
        new Clearing(admin, FareToken(address(0)));
    }

    function test_SetOperator() public {
        vm.expectEmit(true, false, false, true, address(clearing));
        emit Clearing.OperatorSet(9, stranger);
        vm.prank(admin);
        clearing.setOperator(9, stranger);
        assertEq(clearing.operatorIds().length, 4);
        assertEq(clearing.operatorPayee(9), stranger);

        // changing a payee does not register the operator twice
        vm.prank(admin);
        clearing.setOperator(9, busPayee);
        assertEq(clearing.operatorIds().length, 4);
        assertEq(clearing.operatorPayee(9), busPayee);
    }

    function test_RevertWhen_SetOperatorZeroPayee() public {
        vm.prank(admin);
        vm.expectRevert(Clearing.ZeroAddress.selector);
        clearing.setOperator(9, address(0));
    }

    function test_RevertWhen_SetOperatorUnauthorized() public {
        vm.prank(stranger);
        vm.expectRevert(unauthorized(stranger, bytes32(0)));
        clearing.setOperator(9, stranger);
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
        uint64 closed = clearing.closePeriod();

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
        assertEq(clearing.closePeriod(), 1);
        vm.prank(settler);
        assertEq(clearing.closePeriod(), 2);
        assertEq(clearing.currentPeriod(), 3);
    }

    function test_ClosePeriodUsesCurrentPayee() public {
        _escrowAndCredit(1, OP_BUS, 50);
        vm.prank(admin);
        clearing.setOperator(OP_BUS, stranger);
        vm.prank(settler);
        clearing.closePeriod();
        assertEq(fare.balanceOf(stranger), 50);
    }

    function test_RevertWhen_ClosePeriodUnauthorized() public {
        bytes32 role = clearing.SETTLER_ROLE();
        vm.prank(admin);
        vm.expectRevert(unauthorized(admin, role));
        clearing.closePeriod();
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
        clearing.closePeriod();
        assertEq(fare.balanceOf(railPayee) + fare.balanceOf(busPayee) + fare.balanceOf(bikePayee), total);
        assertEq(fare.balanceOf(address(clearing)), 0);
        assertEq(clearing.totalUnpaid(), 0);
    }
}
