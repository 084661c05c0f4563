// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Vm.sol";
import {Fixture} from "./utils/Fixture.sol";
import {Clearing} from "../src/Clearing.sol";
import {DelayInsurance} from "../src/DelayInsurance.sol";
import {IVoucherPayables} from "../src/IVoucherPayables.sol";

/// @dev Clearing.settlePeriod / closePeriod: redeemed vouchers paid out of the insurer's premium
///      claim, net adjustments between operators, then the payout.
contract ClearingSettleTest is Fixture {
    address internal mkt = makeAddr("mkt");
    uint256 internal policyNonce = 1000;

    function setUp() public override {
        super.setUp();
        vm.startPrank(admin);
        clearing.grantRole(clearing.MARKET_ROLE(), mkt);
        insurance.grantRole(insurance.MARKET_ROLE(), mkt);
        vm.stopPrank();
        addInsurer();
    }

    // ------------------------------------------------------------------ helpers

    /// @dev what the market does: transfer into escrow, then credit
    function _credit(uint32 op, uint256 amount) internal {
        fund(address(clearing), amount);
        vm.prank(mkt);
        clearing.credit(1, op, amount);
    }

    /// @dev a voucher worth `value`, issued and redeemed at `op`: books payableTo(op) += value
    function _book(uint32 op, uint128 value) internal {
        vm.prank(catalog);
        insurance.setTerms(DelayInsurance.Terms(THRESHOLD, value, op, VOUCHER_LIFETIME));
        uint256 pid = ++policyNonce;
        vm.prank(mkt);
        insurance.openPolicy(pid, traveler, uint64(block.timestamp), uint64(block.timestamp + 1 days));
        vm.prank(oracle);
        uint256 vid = insurance.reportDelay(bytes32(pid), pid, 30);
        vm.prank(redeemer);
        insurance.redeem(vid, op);
    }

    function _none() internal pure returns (Clearing.Transfer[] memory) {
        return new Clearing.Transfer[](0);
    }

    function _one(uint32 from, uint32 to, uint256 amount) internal pure returns (Clearing.Transfer[] memory t) {
        t = new Clearing.Transfer[](1);
        t[0] = Clearing.Transfer(from, to, amount);
    }

    function _two(uint32 f0, uint32 t0, uint256 a0, uint32 f1, uint32 t1, uint256 a1)
        internal
        pure
        returns (Clearing.Transfer[] memory t)
    {
        t = new Clearing.Transfer[](2);
        t[0] = Clearing.Transfer(f0, t0, a0);
        t[1] = Clearing.Transfer(f1, t1, a1);
    }

    function _settle(Clearing.Transfer[] memory adj) internal returns (uint64) {
        uint64 period = clearing.currentPeriod();
        vm.prank(settler);
        return clearing.settlePeriod(period, adj);
    }

    function _count(Vm.Log[] memory logs, address emitter, bytes32 topic) internal pure returns (uint256 n) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == emitter && logs[i].topics[0] == topic) ++n;
        }
    }

    function _assertEscrow() internal view {
        uint32[] memory ops = clearing.operatorIds();
        uint256 sum;
        for (uint256 i; i < ops.length; ++i) {
            sum += clearing.unpaid(ops[i]);
        }
        assertEq(sum, clearing.totalUnpaid(), "sum unpaid");
        assertEq(fare.balanceOf(address(clearing)), clearing.totalUnpaid(), "escrow");
    }

    // ------------------------------------------------------------------ setInsurance

    function test_SetInsurance() public {
        (address ins, uint32 insurerId) = clearing.insurance();
        assertEq(ins, address(insurance));
        assertEq(insurerId, OP_INSURER);

        vm.expectEmit(false, false, false, true, address(clearing));
        emit Clearing.InsuranceSet(address(0), OP_BUS);
        vm.prank(catalog);
        clearing.setInsurance(address(0), OP_BUS);
        (ins, insurerId) = clearing.insurance();
        assertEq(ins, address(0));
        assertEq(insurerId, OP_BUS);
    }

    function test_RevertWhen_SetInsuranceUnknownOperator() public {
        vm.prank(catalog);
        vm.expectRevert(abi.encodeWithSelector(Clearing.UnknownOperator.selector, uint32(99)));
        clearing.setInsurance(address(insurance), 99);
    }

    function test_RevertWhen_SetInsuranceUnauthorized() public {
        bytes32 role = clearing.CATALOG_ROLE();
        vm.prank(settler);
        vm.expectRevert(unauthorized(settler, role));
        clearing.setInsurance(address(insurance), OP_INSURER);
    }

    /// @dev the catalogue key can switch voucher settlement off and on and name the insurer, but
    ///      cannot point it at another contract (one claiming the insurer's premiums as payables)
    function test_RevertWhen_SetInsuranceForeignContract() public {
        address fake = makeAddr("fake payables");
        vm.prank(catalog);
        vm.expectRevert(abi.encodeWithSelector(Clearing.UnknownInsurance.selector, fake));
        clearing.setInsurance(fake, OP_INSURER);
        (address ins,) = clearing.insurance();
        assertEq(ins, address(insurance));
    }

    // ------------------------------------------------------------------ vouchers

    function test_SettleVouchersFullyCovered() public {
        _credit(OP_INSURER, 2000);
        _credit(OP_RAIL, 1000);
        _book(OP_RAIL, 500);
        _book(OP_BIKE, 300);
        _book(OP_RAIL, 200);

        vm.expectEmit(true, false, false, true, address(insurance));
        emit DelayInsurance.PayableSettled(OP_RAIL, 700);
        vm.expectEmit(true, true, true, true, address(clearing));
        emit Clearing.VoucherSettled(1, OP_INSURER, OP_RAIL, 700);
        vm.expectEmit(true, false, false, true, address(insurance));
        emit DelayInsurance.PayableSettled(OP_BIKE, 300);
        vm.expectEmit(true, true, true, true, address(clearing));
        emit Clearing.VoucherSettled(1, OP_INSURER, OP_BIKE, 300);
        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Payout(1, OP_RAIL, railPayee, 1700);
        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Payout(1, OP_BIKE, bikePayee, 300);
        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Payout(1, OP_INSURER, insurerPayee, 1000);
        vm.expectEmit(true, false, false, true, address(clearing));
        emit Clearing.PeriodClosed(1, 3000);
        vm.recordLogs();
        assertEq(_settle(_none()), 1);

        assertEq(_count(vm.getRecordedLogs(), address(clearing), Clearing.VoucherSettled.selector), 2);
        assertEq(fare.balanceOf(railPayee), 1700);
        assertEq(fare.balanceOf(bikePayee), 300);
        assertEq(fare.balanceOf(busPayee), 0);
        assertEq(fare.balanceOf(insurerPayee), 1000);
        assertEq(insurance.payableTo(OP_RAIL), 0);
        assertEq(insurance.payableTo(OP_BIKE), 0);
        assertEq(insurance.totalPayable(), 0);
        assertEq(clearing.currentPeriod(), 2);
        _assertEscrow();
    }

    function test_SettleVouchersPartiallyCoveredCarriesOver() public {
        _credit(OP_INSURER, 600);
        _book(OP_RAIL, 500);
        _book(OP_BIKE, 300);

        // period 1: the insurer's claim of 600 pays rail in full, bike 100 of 300
        vm.expectEmit(true, true, true, true, address(clearing));
        emit Clearing.VoucherSettled(1, OP_INSURER, OP_RAIL, 500);
        vm.expectEmit(true, true, true, true, address(clearing));
        emit Clearing.VoucherSettled(1, OP_INSURER, OP_BIKE, 100);
        vm.expectEmit(true, false, false, true, address(clearing));
        emit Clearing.PeriodClosed(1, 600);
        vm.recordLogs();
        _settle(_none());
        assertEq(_count(vm.getRecordedLogs(), address(clearing), Clearing.Payout.selector), 2); // not the insurer
        assertEq(fare.balanceOf(railPayee), 500);
        assertEq(fare.balanceOf(bikePayee), 100);
        assertEq(fare.balanceOf(insurerPayee), 0);
        assertEq(clearing.unpaid(OP_INSURER), 0);
        assertEq(insurance.payableTo(OP_RAIL), 0);
        assertEq(insurance.payableTo(OP_BIKE), 200); // carried to a later period
        assertEq(insurance.totalPayable(), 200);

        // period 2: no premiums, nothing settled, the payable stays
        vm.recordLogs();
        vm.prank(settler);
        assertEq(clearing.closePeriod(2), 2);
        assertEq(_count(vm.getRecordedLogs(), address(clearing), Clearing.VoucherSettled.selector), 0);
        assertEq(insurance.payableTo(OP_BIKE), 200);

        // period 3 (closePeriod also settles vouchers): new premiums pay the rest
        _credit(OP_INSURER, 1000);
        vm.expectEmit(true, true, true, true, address(clearing));
        emit Clearing.VoucherSettled(3, OP_INSURER, OP_BIKE, 200);
        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Payout(3, OP_BIKE, bikePayee, 200);
        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Payout(3, OP_INSURER, insurerPayee, 800);
        vm.prank(settler);
        assertEq(clearing.closePeriod(3), 3);
        assertEq(fare.balanceOf(bikePayee), 300);
        assertEq(fare.balanceOf(insurerPayee), 800);
        assertEq(insurance.totalPayable(), 0);
        _assertEscrow();
    }

    function test_SettleVouchersStopsWhenClaimSpent() public {
        _credit(OP_INSURER, 500);
        _book(OP_RAIL, 500);
        _book(OP_BUS, 300);
        // the claim is spent on rail: bus is not even looked up
        vm.expectCall(address(insurance), abi.encodeCall(IVoucherPayables.payableTo, (OP_BUS)), 0);
        vm.expectCall(address(insurance), abi.encodeCall(IVoucherPayables.settlePayable, (OP_RAIL, 500)), 1);
        _settle(_none());
        assertEq(insurance.totalPayable(), 300); // bus's (not payableTo: that would count as a call)
        assertEq(fare.balanceOf(railPayee), 500);
        _assertEscrow();
    }

    function test_SettleVouchersNothingWithoutClaim() public {
        _credit(OP_RAIL, 100);
        _book(OP_RAIL, 500);
        vm.expectCall(address(insurance), abi.encodeWithSelector(IVoucherPayables.settlePayable.selector), 0);
        vm.recordLogs();
        _settle(_none());
        assertEq(_count(vm.getRecordedLogs(), address(clearing), Clearing.VoucherSettled.selector), 0);
        assertEq(insurance.payableTo(OP_RAIL), 500);
        assertEq(fare.balanceOf(railPayee), 100);
    }

    function test_SettleVouchersNothingPayable() public {
        _credit(OP_INSURER, 100);
        vm.expectCall(address(insurance), abi.encodeWithSelector(IVoucherPayables.payableTo.selector), 0);
        _settle(_none());
        assertEq(fare.balanceOf(insurerPayee), 100);
    }

    function test_SettleSkipsInsurerAndUnregisteredOperators() public {
        _credit(OP_INSURER, 5000);
        _book(OP_INSURER, 400); // a voucher redeemed at the insurer itself: not paid to itself
        _book(77, 300); // an operator Clearing does not know: stays payable
        _book(OP_BUS, 200);
        vm.recordLogs();
        _settle(_none());
        assertEq(_count(vm.getRecordedLogs(), address(clearing), Clearing.VoucherSettled.selector), 1);
        assertEq(insurance.payableTo(OP_INSURER), 400);
        assertEq(insurance.payableTo(77), 300);
        assertEq(insurance.payableTo(OP_BUS), 0);
        assertEq(insurance.totalPayable(), 700);
        assertEq(fare.balanceOf(busPayee), 200);
        assertEq(fare.balanceOf(insurerPayee), 4800);
    }

    function test_SettleWithoutInsurancePaysAsBefore() public {
        vm.prank(catalog);
        clearing.setInsurance(address(0), OP_INSURER);
        _credit(OP_INSURER, 1000);
        _book(OP_RAIL, 500);
        vm.expectCall(address(insurance), abi.encodeWithSelector(IVoucherPayables.totalPayable.selector), 0);
        vm.prank(settler);
        clearing.closePeriod(1);
        assertEq(fare.balanceOf(insurerPayee), 1000);
        assertEq(fare.balanceOf(railPayee), 0);
        assertEq(insurance.payableTo(OP_RAIL), 500);
    }

    function test_RevertWhen_ClearingLacksClearingRole() public {
        bytes32 role = insurance.CLEARING_ROLE();
        vm.prank(admin);
        insurance.revokeRole(role, address(clearing));
        _credit(OP_INSURER, 1000);
        _book(OP_RAIL, 500);
        vm.prank(settler);
        vm.expectRevert(unauthorized(address(clearing), role));
        clearing.closePeriod(1);
        assertEq(clearing.unpaid(OP_INSURER), 1000);
        assertEq(clearing.currentPeriod(), 1);
    }

    // ------------------------------------------------------------------ adjustments

    function test_SettlePeriodAdjustmentsMoveClaims() public {
        _credit(OP_RAIL, 1000);
        _credit(OP_BUS, 200);
        // in order: bus holds 500 after the first move, so it can pass 450 on
        Clearing.Transfer[] memory adj = _two(OP_RAIL, OP_BUS, 300, OP_BUS, OP_BIKE, 450);
        vm.expectEmit(true, true, true, true, address(clearing));
        emit Clearing.ClaimMoved(1, OP_RAIL, OP_BUS, 300);
        vm.expectEmit(true, true, true, true, address(clearing));
        emit Clearing.ClaimMoved(1, OP_BUS, OP_BIKE, 450);
        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Payout(1, OP_RAIL, railPayee, 700);
        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Payout(1, OP_BUS, busPayee, 50);
        vm.expectEmit(true, true, false, true, address(clearing));
        emit Clearing.Payout(1, OP_BIKE, bikePayee, 450);
        vm.expectEmit(true, false, false, true, address(clearing));
        emit Clearing.PeriodClosed(1, 1200);
        assertEq(_settle(adj), 1);
        assertEq(fare.balanceOf(railPayee), 700);
        assertEq(fare.balanceOf(busPayee), 50);
        assertEq(fare.balanceOf(bikePayee), 450);
        assertEq(clearing.totalUnpaid(), 0);
        assertEq(clearing.currentPeriod(), 2);
        _assertEscrow();

        // the period id of the events follows the period
        _credit(OP_BIKE, 10);
        vm.expectEmit(true, true, true, true, address(clearing));
        emit Clearing.ClaimMoved(2, OP_BIKE, OP_INSURER, 10);
        assertEq(_settle(_one(OP_BIKE, OP_INSURER, 10)), 2);
        assertEq(fare.balanceOf(insurerPayee), 10);
    }

    function test_SettlePeriodAdjustmentOfWholeClaim() public {
        _credit(OP_BUS, 300);
        _settle(_one(OP_BUS, OP_RAIL, 300));
        assertEq(fare.balanceOf(railPayee), 300);
        assertEq(fare.balanceOf(busPayee), 0);
    }

    function test_SettlePeriodVouchersBeforeAdjustments() public {
        _credit(OP_INSURER, 1000);
        _book(OP_BIKE, 300);
        // bike has nothing before the voucher step; its 300 from vouchers is passed on to bus
        vm.expectEmit(true, true, true, true, address(clearing));
        emit Clearing.VoucherSettled(1, OP_INSURER, OP_BIKE, 300);
        vm.expectEmit(true, true, true, true, address(clearing));
        emit Clearing.ClaimMoved(1, OP_BIKE, OP_BUS, 300);
        _settle(_two(OP_BIKE, OP_BUS, 300, OP_INSURER, OP_RAIL, 700));
        assertEq(fare.balanceOf(busPayee), 300);
        assertEq(fare.balanceOf(railPayee), 700);
        assertEq(fare.balanceOf(bikePayee), 0);
        assertEq(fare.balanceOf(insurerPayee), 0);
        _assertEscrow();
    }

    function test_SettlePeriodEmpty() public {
        vm.expectEmit(true, false, false, true, address(clearing));
        emit Clearing.PeriodClosed(1, 0);
        assertEq(_settle(_none()), 1);
        assertEq(clearing.currentPeriod(), 2);
    }

    function _expectSettleRevert(Clearing.Transfer[] memory adj, bytes memory err) internal {
        uint256 railBefore = clearing.unpaid(OP_RAIL);
        uint256 payableBefore = insurance.totalPayable();
        vm.prank(settler);
        vm.expectRevert(err);
        clearing.settlePeriod(1, adj);
        // nothing happened: no voucher settled, no claim moved, no period closed
        assertEq(clearing.unpaid(OP_RAIL), railBefore);
        assertEq(insurance.totalPayable(), payableBefore);
        assertEq(clearing.currentPeriod(), 1);
    }

    function test_RevertWhen_AdjustmentUnknownFrom() public {
        _credit(OP_RAIL, 100);
        _expectSettleRevert(_one(99, OP_RAIL, 1), abi.encodeWithSelector(Clearing.UnknownOperator.selector, 99));
    }

    function test_RevertWhen_AdjustmentUnknownTo() public {
        _credit(OP_RAIL, 100);
        _expectSettleRevert(_one(OP_RAIL, 98, 1), abi.encodeWithSelector(Clearing.UnknownOperator.selector, 98));
    }

    function test_RevertWhen_AdjustmentSelfTransfer() public {
        _credit(OP_RAIL, 100);
        _expectSettleRevert(_one(OP_RAIL, OP_RAIL, 1), abi.encodeWithSelector(Clearing.SelfTransfer.selector, OP_RAIL));
    }

    function test_RevertWhen_AdjustmentZeroAmount() public {
        _credit(OP_RAIL, 100);
        _expectSettleRevert(_one(OP_RAIL, OP_BUS, 0), abi.encodeWithSelector(Clearing.ZeroAmount.selector));
    }

    function test_RevertWhen_AdjustmentExceedsUnpaid() public {
        _credit(OP_RAIL, 100);
        _expectSettleRevert(
            _one(OP_RAIL, OP_BUS, 101), abi.encodeWithSelector(Clearing.InsufficientUnpaid.selector, OP_RAIL, 100, 101)
        );
    }

    /// @dev the check sees the claim after the earlier adjustments (and the voucher step), and a
    ///      failing later adjustment undoes the whole settlement, vouchers included
    function test_RevertWhen_LaterAdjustmentExceedsUnpaid() public {
        _credit(OP_RAIL, 100);
        _credit(OP_INSURER, 1000);
        _book(OP_BUS, 200);
        _expectSettleRevert(
            _two(OP_RAIL, OP_BUS, 60, OP_RAIL, OP_BIKE, 41),
            abi.encodeWithSelector(Clearing.InsufficientUnpaid.selector, OP_RAIL, 40, 41)
        );
        _expectSettleRevert(
            _one(OP_INSURER, OP_BIKE, 801),
            abi.encodeWithSelector(Clearing.InsufficientUnpaid.selector, OP_INSURER, 800, 801)
        );
        assertEq(clearing.unpaid(OP_INSURER), 1000);
        assertEq(insurance.payableTo(OP_BUS), 200);
        _settle(_one(OP_INSURER, OP_BIKE, 800)); // exactly what is left after the voucher step
        assertEq(fare.balanceOf(bikePayee), 800);
        assertEq(fare.balanceOf(busPayee), 200);
    }

    /// @dev a settlement names its period: sent again (a retry after a lost receipt, a second
    ///      closer) it fails, and a later period's claims are not paid with the old adjustments
    function test_RevertWhen_SettlePeriodReplayed() public {
        _credit(OP_RAIL, 1000);
        Clearing.Transfer[] memory adj = _one(OP_RAIL, OP_BUS, 300);
        assertEq(_settle(adj), 1);
        _credit(OP_RAIL, 500); // period 2
        vm.prank(settler);
        vm.expectRevert(abi.encodeWithSelector(Clearing.WrongPeriod.selector, 1, 2));
        clearing.settlePeriod(1, adj);
        assertEq(clearing.unpaid(OP_RAIL), 500);
        assertEq(fare.balanceOf(railPayee), 700);
        assertEq(fare.balanceOf(busPayee), 300);
        assertEq(clearing.currentPeriod(), 2);
    }

    function test_RevertWhen_SettlePeriodUnauthorized() public {
        bytes32 role = clearing.SETTLER_ROLE();
        vm.prank(admin);
        vm.expectRevert(unauthorized(admin, role));
        clearing.settlePeriod(1, _none());
        vm.prank(mkt);
        vm.expectRevert(unauthorized(mkt, role));
        clearing.settlePeriod(1, _one(OP_RAIL, OP_BUS, 1));
    }

    // ------------------------------------------------------------------ fuzz

    /// @dev random premiums, sale credits, voucher payables and valid adjustments, checked against a
    ///      model: each payee gets what the model says, payouts sum to totalUnpaid before the close,
    ///      no FARE is created or lost, the voucher value settled = min(premiums, payables).
    function testFuzz_SettlePeriodConserves(
        uint64 premium,
        uint64[3] memory credits,
        uint32[3] memory payables,
        uint256[4] memory adjSeeds
    ) public {
        // registration order: rail, bus, bike, insurer
        uint32[4] memory ops = [OP_RAIL, OP_BUS, OP_BIKE, OP_INSURER];
        address[4] memory payees = [railPayee, busPayee, bikePayee, insurerPayee];
        uint256[4] memory model;
        model[3] = bound(premium, 0, 1e12);
        if (model[3] != 0) _credit(OP_INSURER, model[3]);
        uint256 booked;
        for (uint256 i; i < 3; ++i) {
            model[i] = bound(credits[i], 0, 1e12);
            if (model[i] != 0) _credit(ops[i], model[i]);
            if (payables[i] % 4 != 0) {
                // three in four operators have vouchers to be paid
                _book(ops[i], uint128(bound(payables[i], 1, 1e9)));
                booked += insurance.payableTo(ops[i]);
            }
        }
        // the model of the voucher step
        uint256[3] memory stillPayable;
        uint256 settled;
        for (uint256 i; i < 3; ++i) {
            uint256 owed = insurance.payableTo(ops[i]);
            uint256 amount = owed < model[3] ? owed : model[3];
            model[3] -= amount;
            model[i] += amount;
            settled += amount;
            stillPayable[i] = owed - amount;
        }
        // up to four valid adjustments on top
        Clearing.Transfer[] memory adj = new Clearing.Transfer[](adjSeeds.length);
        uint256 n;
        for (uint256 k; k < adjSeeds.length; ++k) {
            uint256 f = adjSeeds[k] % 4;
            uint256 t = (f + 1 + (adjSeeds[k] >> 8) % 3) % 4;
            if (model[f] == 0) continue;
            uint256 amount = bound(adjSeeds[k] >> 16, 1, model[f]);
            adj[n++] = Clearing.Transfer(ops[f], ops[t], amount);
            model[f] -= amount;
            model[t] += amount;
        }
        assembly {
            mstore(adj, n)
        }

        uint256 totalBefore = clearing.totalUnpaid();
        uint256 supply = fare.totalSupply();
        assertEq(fare.balanceOf(address(clearing)), totalBefore);
        _settle(adj);

        uint256 paid;
        for (uint256 i; i < 4; ++i) {
            assertEq(fare.balanceOf(payees[i]), model[i], "payout");
            paid += model[i];
        }
        assertEq(paid, totalBefore, "payouts == totalUnpaid before");
        assertEq(fare.totalSupply(), supply, "FARE created or destroyed");
        assertEq(fare.balanceOf(address(clearing)), 0);
        assertEq(clearing.totalUnpaid(), 0);
        assertEq(insurance.totalPayable(), booked - settled, "payable settled");
        for (uint256 i; i < 3; ++i) {
            assertEq(insurance.payableTo(ops[i]), stillPayable[i]);
        }
        assertEq(insurance.payableTo(OP_INSURER), 0);
    }
}
