// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {DelayInsurance} from "../src/DelayInsurance.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

contract DelayInsuranceTest is Fixture {
    address internal mkt = makeAddr("mkt");
    uint64 internal t0;
    bytes32 internal constant DELAY = keccak256("IC 123 2025-06-15 +22min");

    function setUp() public override {
        super.setUp();
        t0 = uint64(block.timestamp);
        bytes32 role = insurance.MARKET_ROLE();
        vm.prank(admin);
        insurance.grantRole(role, mkt);
    }

    function _open(uint256 policyId) internal {
        vm.prank(mkt);
        insurance.openPolicy(policyId, traveler, t0, t0 + 1 days);
    }

    function _voucher() internal returns (uint256 id) {
        _open(11);
        vm.prank(oracle);
        id = insurance.reportDelay(DELAY, 11, 30);
    }

    function test_Metadata() public view {
        assertEq(insurance.name(), "Kippu Voucher");
        assertEq(insurance.symbol(), "KVCH");
        assertEq(insurance.MARKET_ROLE(), keccak256("MARKET_ROLE"));
        assertEq(insurance.ORACLE_ROLE(), keccak256("ORACLE_ROLE"));
        assertEq(insurance.REDEEMER_ROLE(), keccak256("REDEEMER_ROLE"));
        assertTrue(insurance.supportsInterface(type(IERC721).interfaceId));
        DelayInsurance.Terms memory t = insurance.terms();
        assertEq(t.thresholdMinutes, THRESHOLD);
        assertEq(t.voucherValue, VOUCHER_VALUE);
        assertEq(t.voucherOperatorId, OP_RAIL);
        assertEq(t.voucherLifetime, VOUCHER_LIFETIME);
    }

    function test_SetTerms() public {
        DelayInsurance.Terms memory t = DelayInsurance.Terms(60, 1234, OP_BUS, 7 days);
        vm.expectEmit(false, false, false, true, address(insurance));
        emit DelayInsurance.TermsSet(60, 1234, OP_BUS, 7 days);
        vm.prank(catalog);
        insurance.setTerms(t);
        DelayInsurance.Terms memory got = insurance.terms();
        assertEq(got.thresholdMinutes, 60);
        assertEq(got.voucherValue, 1234);
        assertEq(got.voucherOperatorId, OP_BUS);
        assertEq(got.voucherLifetime, 7 days);
    }

    function test_RevertWhen_SetTermsInvalid() public {
        vm.prank(catalog);
        vm.expectRevert(DelayInsurance.InvalidTerms.selector);
        insurance.setTerms(DelayInsurance.Terms(60, 1234, OP_BUS, 0));

        vm.expectRevert(DelayInsurance.InvalidTerms.selector);
        new DelayInsurance(admin, DelayInsurance.Terms(60, 1234, OP_BUS, 0));
    }

    function test_RevertWhen_SetTermsUnauthorized() public {
        bytes32 role = insurance.CATALOG_ROLE();
        vm.prank(oracle);
        vm.expectRevert(unauthorized(oracle, role));
        insurance.setTerms(defaultTerms());
    }

    function test_OpenPolicy() public {
        vm.expectEmit(true, true, false, true, address(insurance));
        emit DelayInsurance.PolicyOpened(11, traveler, t0, t0 + 1 days);
        _open(11);
        DelayInsurance.Policy memory p = insurance.policy(11);
        assertEq(p.holder, traveler);
        assertEq(p.validFrom, t0);
        assertEq(p.validUntil, t0 + 1 days);
    }

    function test_RevertWhen_OpenPolicyDuplicate() public {
        _open(11);
        vm.prank(mkt);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.PolicyExists.selector, 11));
        insurance.openPolicy(11, stranger, t0, t0 + 2 days);
    }

    function test_RevertWhen_OpenPolicyInvalidArgs() public {
        vm.startPrank(mkt);
        vm.expectRevert(DelayInsurance.ZeroAddress.selector);
        insurance.openPolicy(11, address(0), t0, t0 + 1);
        vm.expectRevert(DelayInsurance.InvalidWindow.selector);
        insurance.openPolicy(11, traveler, t0, t0);
        vm.stopPrank();
    }

    function test_RevertWhen_OpenPolicyUnauthorized() public {
        bytes32 role = insurance.MARKET_ROLE();
        vm.prank(oracle);
        vm.expectRevert(unauthorized(oracle, role));
        insurance.openPolicy(11, traveler, t0, t0 + 1);
    }

    function test_RevertWhen_PolicyUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownPolicy.selector, 5));
        insurance.policy(5);
    }

    function test_ReportDelay() public {
        _open(11);
        uint64 expiry = t0 + VOUCHER_LIFETIME;
        vm.expectEmit(true, true, false, true, address(insurance));
        emit DelayInsurance.DelayReported(DELAY, 11, 30);
        vm.expectEmit(true, true, true, true, address(insurance));
        emit DelayInsurance.VoucherIssued(1, 11, traveler, VOUCHER_VALUE, OP_RAIL, expiry, DELAY);
        vm.prank(oracle);
        uint256 id = insurance.reportDelay(DELAY, 11, 30);

        assertEq(id, 1);
        assertEq(insurance.ownerOf(1), traveler);
        assertTrue(insurance.compensated(11, DELAY));
        DelayInsurance.Voucher memory v = insurance.voucher(1);
        assertEq(v.policyId, 11);
        assertEq(v.value, VOUCHER_VALUE);
        assertEq(v.operatorId, OP_RAIL);
        assertEq(v.expiry, expiry);
        assertEq(v.delayId, DELAY);

        // a different delay on the same policy is a new voucher
        vm.prank(oracle);
        assertEq(insurance.reportDelay(keccak256("other"), 11, THRESHOLD), 2);
    }

    function test_ReportDelaySameDelayOtherPolicy() public {
        _open(11);
        _open(12);
        vm.startPrank(oracle);
        assertEq(insurance.reportDelay(DELAY, 11, 30), 1);
        assertEq(insurance.reportDelay(DELAY, 12, 30), 2);
        vm.stopPrank();
    }

    function test_RevertWhen_ReportDelayUnknownPolicy() public {
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownPolicy.selector, 99));
        insurance.reportDelay(DELAY, 99, 30);
    }

    function test_RevertWhen_ReportDelayNotCovered() public {
        vm.prank(mkt);
        insurance.openPolicy(11, traveler, t0 + 10, t0 + 20);
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.NotCovered.selector, 11));
        insurance.reportDelay(DELAY, 11, 30);

        vm.warp(t0 + 20);
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.NotCovered.selector, 11));
        insurance.reportDelay(DELAY, 11, 30);

        vm.warp(t0 + 19);
        vm.prank(oracle);
        insurance.reportDelay(DELAY, 11, 30);
    }

    function test_RevertWhen_ReportDelayBelowThreshold() public {
        _open(11);
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.BelowThreshold.selector, THRESHOLD - 1, THRESHOLD));
        insurance.reportDelay(DELAY, 11, THRESHOLD - 1);
    }

    function test_RevertWhen_ReportDelayAlreadyCompensated() public {
        _voucher();
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.AlreadyCompensated.selector, 11, DELAY));
        insurance.reportDelay(DELAY, 11, 45);
    }

    function test_RevertWhen_ReportDelayUnauthorized() public {
        _open(11);
        bytes32 role = insurance.ORACLE_ROLE();
        vm.prank(redeemer);
        vm.expectRevert(unauthorized(redeemer, role));
        insurance.reportDelay(DELAY, 11, 30);
    }

    function test_Redeem() public {
        uint256 id = _voucher();
        vm.expectEmit(true, true, false, true, address(insurance));
        emit DelayInsurance.VoucherRedeemed(id, OP_RAIL, VOUCHER_VALUE);
        vm.prank(redeemer);
        insurance.redeem(id, OP_RAIL);

        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, id));
        insurance.ownerOf(id);
        assertEq(insurance.balanceOf(traveler), 0);
        // history stays readable
        assertEq(insurance.voucher(id).value, VOUCHER_VALUE);

        vm.prank(redeemer);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownVoucher.selector, id));
        insurance.redeem(id, OP_RAIL);
    }

    function test_RevertWhen_RedeemUnknownVoucher() public {
        vm.prank(redeemer);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownVoucher.selector, 3));
        insurance.redeem(3, OP_RAIL);

        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownVoucher.selector, 3));
        insurance.voucher(3);
    }

    function test_RevertWhen_RedeemWrongOperator() public {
        uint256 id = _voucher();
        vm.prank(redeemer);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.WrongOperator.selector, id, OP_BUS));
        insurance.redeem(id, OP_BUS);
    }

    function test_RevertWhen_RedeemExpired() public {
        uint256 id = _voucher();
        vm.warp(t0 + VOUCHER_LIFETIME);
        vm.prank(redeemer);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.VoucherExpired.selector, id));
        insurance.redeem(id, OP_RAIL);
    }

    function test_RedeemJustBeforeExpiry() public {
        uint256 id = _voucher();
        vm.warp(t0 + VOUCHER_LIFETIME - 1);
        vm.prank(redeemer);
        insurance.redeem(id, OP_RAIL);
    }

    function test_RedeemTransferredVoucher() public {
        uint256 id = _voucher();
        vm.prank(traveler);
        insurance.transferFrom(traveler, stranger, id);
        vm.prank(redeemer);
        insurance.redeem(id, OP_RAIL);
        assertEq(insurance.balanceOf(stranger), 0);
    }

    function test_RevertWhen_RedeemUnauthorized() public {
        uint256 id = _voucher();
        bytes32 role = insurance.REDEEMER_ROLE();
        vm.prank(traveler);
        vm.expectRevert(unauthorized(traveler, role));
        insurance.redeem(id, OP_RAIL);
    }

    // ------------------------------------------------------------------ settlePayable (Clearing)

    function _redeemed(uint256 policyId, uint32 op) internal {
        vm.prank(mkt);
        insurance.openPolicy(policyId, traveler, t0, t0 + 1 days);
        vm.prank(oracle);
        uint256 id = insurance.reportDelay(DELAY, policyId, 30);
        vm.prank(redeemer);
        insurance.redeem(id, op);
    }

    function test_SettlePayable() public {
        assertEq(insurance.CLEARING_ROLE(), keccak256("CLEARING_ROLE"));
        assertTrue(insurance.hasRole(insurance.CLEARING_ROLE(), address(clearing)));
        _redeemed(21, OP_RAIL);
        _redeemed(22, OP_RAIL);
        vm.prank(catalog);
        insurance.setTerms(DelayInsurance.Terms(THRESHOLD, 300, OP_BUS, VOUCHER_LIFETIME));
        _redeemed(23, OP_BUS);
        assertEq(insurance.totalPayable(), 1300);

        vm.expectEmit(true, false, false, true, address(insurance));
        emit DelayInsurance.PayableSettled(OP_RAIL, 600);
        vm.prank(address(clearing));
        insurance.settlePayable(OP_RAIL, 600);
        assertEq(insurance.payableTo(OP_RAIL), 400);
        assertEq(insurance.payableTo(OP_BUS), 300);
        assertEq(insurance.totalPayable(), 700);

        vm.startPrank(address(clearing));
        insurance.settlePayable(OP_RAIL, 400);
        insurance.settlePayable(OP_BUS, 0); // a no-op
        insurance.settlePayable(OP_BUS, 300);
        vm.stopPrank();
        assertEq(insurance.payableTo(OP_RAIL), 0);
        assertEq(insurance.payableTo(OP_BUS), 0);
        assertEq(insurance.totalPayable(), 0);
    }

    function test_RevertWhen_SettlePayableExceedsPayable() public {
        _redeemed(21, OP_RAIL);
        vm.startPrank(address(clearing));
        vm.expectRevert(
            abi.encodeWithSelector(
                DelayInsurance.InsufficientPayable.selector, OP_RAIL, VOUCHER_VALUE, VOUCHER_VALUE + 1
            )
        );
        insurance.settlePayable(OP_RAIL, VOUCHER_VALUE + 1);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.InsufficientPayable.selector, OP_BUS, 0, 1));
        insurance.settlePayable(OP_BUS, 1);
        vm.stopPrank();
        assertEq(insurance.payableTo(OP_RAIL), VOUCHER_VALUE);
    }

    function test_RevertWhen_SettlePayableUnauthorized() public {
        _redeemed(21, OP_RAIL);
        bytes32 role = insurance.CLEARING_ROLE();
        vm.prank(redeemer);
        vm.expectRevert(unauthorized(redeemer, role));
        insurance.settlePayable(OP_RAIL, 1);
        vm.prank(admin); // not even the admin: only Clearing settles
        vm.expectRevert(unauthorized(admin, role));
        insurance.settlePayable(OP_RAIL, 1);
    }
}

/// @dev Per-product delay-cover terms and caps, on ticket-backed policies bought through the market.
contract DelayInsuranceProductTermsTest is Fixture {
    uint32 internal constant P_TAXI_COVER = 61; // insured, bus operator, 3 days
    uint32 internal constant B_RAIL = 610;
    uint32 internal constant B_TAXI = 611;
    uint32 internal constant B_BUS = 612; // uninsured
    uint32 internal constant OP_TAXI = 77;
    bytes32 internal constant TAXI = keccak256("taxi");
    bytes32 internal constant D1 = keccak256("IC 1 2025-06-15");
    bytes32 internal constant D2 = keccak256("IC 2 2025-06-15");
    bytes32 internal constant D3 = keccak256("IC 3 2025-06-15");

    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal oracle2 = makeAddr("oracle2");

    function setUp() public override {
        super.setUp();
        vm.startPrank(catalog);
        market.setProduct(P_TAXI_COVER, fixedProduct(OP_BUS, 200, 3 days, type(uint32).max, true));
        market.setBundle(B_RAIL, _ids(P_RAIL_DAY), 0);
        market.setBundle(B_TAXI, _ids(P_TAXI_COVER), 0);
        market.setBundle(B_BUS, _ids(P_BUS_2), 0);
        vm.stopPrank();
        bytes32 oracleRole = insurance.ORACLE_ROLE();
        vm.prank(admin);
        insurance.grantRole(oracleRole, oracle2);
        address[3] memory who = [traveler, alice, bob];
        for (uint256 i; i < who.length; ++i) {
            fund(who[i], 100_000);
            vm.prank(who[i]);
            fare.approve(address(market), type(uint256).max);
        }
    }

    function _ids(uint32 a) internal pure returns (uint32[] memory ids) {
        ids = new uint32[](1);
        ids[0] = a;
    }

    function _buy(address who, uint32 bundleId) internal returns (uint256 ticketId) {
        ticketId = ticket.nextTicketId();
        vm.prank(who);
        market.buy(_rid(), bundleId, 0, type(uint256).max);
    }

    function _pt(uint32 threshold, uint128 value, uint64 lifetime, bytes32 category, uint16 maxTrip, uint16 maxDay)
        internal
        pure
        returns (DelayInsurance.ProductTerms memory)
    {
        return DelayInsurance.ProductTerms({
            thresholdMinutes: threshold,
            voucherValue: value,
            voucherOperatorId: OP_TAXI,
            voucherLifetime: lifetime,
            voucherCategory: category,
            maxPerTrip: maxTrip,
            maxPerDay: maxDay
        });
    }

    function _setTerms(uint32 productId, DelayInsurance.ProductTerms memory t) internal {
        vm.prank(catalog);
        insurance.setProductTerms(productId, t);
    }

    function _caps(uint16 maxTrip, uint16 maxDay) internal {
        _setTerms(P_TAXI_COVER, _pt(20, 900, 2 days, TAXI, maxTrip, maxDay));
    }

    function _report(address o, bytes32 delayId, uint256 policyId) internal returns (uint256) {
        vm.prank(o);
        return insurance.reportDelay(delayId, policyId, 45);
    }

    function _today() internal view returns (uint64) {
        return uint64(block.timestamp / 1 days);
    }

    function _assertTerms(DelayInsurance.ProductTerms memory a, DelayInsurance.ProductTerms memory b) internal pure {
        assertEq(a.thresholdMinutes, b.thresholdMinutes, "threshold");
        assertEq(a.voucherValue, b.voucherValue, "value");
        assertEq(a.voucherOperatorId, b.voucherOperatorId, "operator");
        assertEq(a.voucherLifetime, b.voucherLifetime, "lifetime");
        assertEq(a.voucherCategory, b.voucherCategory, "category");
        assertEq(a.maxPerTrip, b.maxPerTrip, "maxPerTrip");
        assertEq(a.maxPerDay, b.maxPerDay, "maxPerDay");
    }

    function _globalTerms(bytes32 category) internal pure returns (DelayInsurance.ProductTerms memory) {
        return DelayInsurance.ProductTerms(THRESHOLD, VOUCHER_VALUE, OP_RAIL, VOUCHER_LIFETIME, category, 0, 0);
    }

    // ------------------------------------------------------------------ admin

    function test_SetProductTerms() public {
        DelayInsurance.ProductTerms memory t = _pt(40, 900, 2 days, TAXI, 3, 2);
        vm.expectEmit(true, false, false, true, address(insurance));
        emit DelayInsurance.ProductTermsSet(P_TAXI_COVER, 40, 900, OP_TAXI, 2 days, TAXI, 3, 2);
        _setTerms(P_TAXI_COVER, t);
        (DelayInsurance.ProductTerms memory got, bool isSet) = insurance.productTerms(P_TAXI_COVER);
        assertTrue(isSet);
        _assertTerms(got, t);
        // other products and the global terms are untouched
        (got, isSet) = insurance.productTerms(P_RAIL_DAY);
        assertFalse(isSet);
        _assertTerms(got, DelayInsurance.ProductTerms(0, 0, 0, 0, 0, 0, 0));
        assertEq(insurance.terms().voucherValue, VOUCHER_VALUE);
    }

    function test_RevertWhen_SetProductTermsInvalid() public {
        vm.startPrank(catalog);
        vm.expectRevert(DelayInsurance.InvalidTerms.selector);
        insurance.setProductTerms(P_TAXI_COVER, _pt(40, 900, 0, TAXI, 0, 0)); // lifetime 0
        vm.expectRevert(DelayInsurance.InvalidTerms.selector);
        insurance.setProductTerms(0, _pt(40, 900, 2 days, TAXI, 0, 0)); // product 0 = stored policies
        vm.stopPrank();
        (, bool isSet) = insurance.productTerms(P_TAXI_COVER);
        assertFalse(isSet);
    }

    function test_RevertWhen_ProductTermsUnauthorized() public {
        bytes32 role = insurance.CATALOG_ROLE();
        // the cold admin grants the catalogue role but does not set terms itself
        address[3] memory notCatalog = [oracle, stranger, admin];
        for (uint256 i; i < notCatalog.length; ++i) {
            vm.prank(notCatalog[i]);
            vm.expectRevert(unauthorized(notCatalog[i], role));
            insurance.setProductTerms(P_TAXI_COVER, _pt(40, 900, 2 days, TAXI, 0, 0));
            vm.prank(notCatalog[i]);
            vm.expectRevert(unauthorized(notCatalog[i], role));
            insurance.clearProductTerms(P_TAXI_COVER);
        }
        // the market role is not enough either
        vm.prank(address(market));
        vm.expectRevert(unauthorized(address(market), role));
        insurance.setProductTerms(P_TAXI_COVER, _pt(40, 900, 2 days, TAXI, 0, 0));
    }

    function test_SetProductTermsAgainReplacesCategory() public {
        _setTerms(P_TAXI_COVER, _pt(20, 900, 2 days, TAXI, 0, 0));
        _setTerms(P_TAXI_COVER, _pt(20, 700, 2 days, bytes32(0), 0, 0));
        (DelayInsurance.ProductTerms memory got,) = insurance.productTerms(P_TAXI_COVER);
        assertEq(got.voucherCategory, bytes32(0));
        assertEq(got.voucherValue, 700);
        uint256 id = _buy(traveler, B_TAXI);
        uint256 vid = _report(oracle, D1, id);
        assertEq(insurance.voucher(vid).category, bytes32(0));
        assertEq(insurance.voucher(vid).value, 700);
    }

    // ------------------------------------------------------------------ terms in reportDelay

    function test_ProductTermsOverrideGlobal() public {
        _setTerms(P_TAXI_COVER, _pt(40, 900, 2 days, TAXI, 0, 0));
        uint256 id = _buy(traveler, B_TAXI);
        _assertTerms(insurance.termsFor(id), _pt(40, 900, 2 days, TAXI, 0, 0));

        // the product's threshold, not the global one (15)
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.BelowThreshold.selector, 39, 40));
        insurance.reportDelay(D1, id, 39);

        uint64 expiry = uint64(block.timestamp) + 2 days;
        vm.expectEmit(true, true, true, true, address(insurance));
        emit DelayInsurance.VoucherIssued(1, id, traveler, 900, OP_TAXI, expiry, D1);
        vm.prank(oracle);
        uint256 vid = insurance.reportDelay(D1, id, 40);
        DelayInsurance.Voucher memory v = insurance.voucher(vid);
        assertEq(v.value, 900);
        assertEq(v.operatorId, OP_TAXI);
        assertEq(v.expiry, expiry);
        assertEq(v.category, TAXI);
        assertEq(v.delayMinutes, 40);
        assertEq(insurance.ownerOf(vid), traveler);

        // the voucher is redeemable by any operator of its category, until the product's lifetime ends
        vm.prank(catalog);
        insurance.setOperatorCategory(OP_BIKE, TAXI);
        vm.warp(expiry);
        vm.prank(redeemer);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.VoucherExpired.selector, vid));
        insurance.redeem(vid, OP_BIKE);
        vm.warp(expiry - 1);
        vm.prank(redeemer);
        insurance.redeem(vid, OP_BIKE);
        assertEq(insurance.payableTo(OP_BIKE), 900);
    }

    function test_ProductWithoutTermsUsesGlobal() public {
        vm.startPrank(catalog);
        insurance.setVoucherCategory("rail");
        insurance.setProductTerms(P_TAXI_COVER, _pt(40, 900, 2 days, TAXI, 1, 1));
        vm.stopPrank();
        uint256 id = _buy(traveler, B_RAIL);
        _assertTerms(insurance.termsFor(id), _globalTerms("rail"));

        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.BelowThreshold.selector, THRESHOLD - 1, THRESHOLD));
        insurance.reportDelay(D1, id, THRESHOLD - 1);
        vm.startPrank(oracle);
        DelayInsurance.Voucher memory v = insurance.voucher(insurance.reportDelay(D1, id, THRESHOLD));
        assertEq(v.value, VOUCHER_VALUE);
        assertEq(v.operatorId, OP_RAIL);
        assertEq(v.expiry, block.timestamp + VOUCHER_LIFETIME);
        assertEq(v.category, bytes32("rail"));
        // no caps on the global terms: the taxi product's caps of 1 do not apply
        insurance.reportDelay(D2, id, THRESHOLD);
        insurance.reportDelay(D3, id, THRESHOLD);
        vm.stopPrank();
        assertEq(insurance.balanceOf(traveler), 3);
        assertEq(insurance.issuedForRun(P_RAIL_DAY, D1), 0);
        assertEq(insurance.issuedOnDay(id, _today()), 0);
    }

    function test_StoredPolicyUsesGlobalTerms() public {
        bytes32 role = insurance.MARKET_ROLE();
        vm.prank(admin);
        insurance.grantRole(role, address(this));
        vm.prank(catalog);
        insurance.setProductTerms(P_TAXI_COVER, _pt(40, 900, 2 days, TAXI, 1, 1));
        uint256 pid = 1_000_000;
        insurance.openPolicy(pid, traveler, uint64(block.timestamp), uint64(block.timestamp + 1 days));
        _assertTerms(insurance.termsFor(pid), _globalTerms(0));
        vm.prank(oracle);
        assertEq(insurance.voucher(insurance.reportDelay(D1, pid, THRESHOLD)).value, VOUCHER_VALUE);
    }

    function test_RevertWhen_TermsForUnknownPolicy() public {
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownPolicy.selector, 999));
        insurance.termsFor(999);
        uint256 bus = _buy(traveler, B_BUS); // uninsured ticket: no policy
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.UnknownPolicy.selector, bus));
        insurance.termsFor(bus);
    }

    function test_ClearProductTermsFallsBack() public {
        _caps(1, 1);
        uint256 id = _buy(traveler, B_TAXI);
        assertEq(insurance.voucher(_report(oracle, D1, id)).value, 900);

        vm.expectEmit(true, false, false, false, address(insurance));
        emit DelayInsurance.ProductTermsCleared(P_TAXI_COVER);
        vm.prank(catalog);
        insurance.clearProductTerms(P_TAXI_COVER);
        (DelayInsurance.ProductTerms memory got, bool isSet) = insurance.productTerms(P_TAXI_COVER);
        assertFalse(isSet);
        _assertTerms(got, DelayInsurance.ProductTerms(0, 0, 0, 0, 0, 0, 0));
        _assertTerms(insurance.termsFor(id), _globalTerms(0));

        // global terms again, and the (now gone) daily cap of 1 no longer applies
        DelayInsurance.Voucher memory v = insurance.voucher(_report(oracle, D2, id));
        assertEq(v.value, VOUCHER_VALUE);
        assertEq(v.operatorId, OP_RAIL);
        assertEq(v.category, bytes32(0));
    }

    // ------------------------------------------------------------------ caps

    function test_TripCapAcrossHolders() public {
        _caps(2, 0);
        uint256 t1 = _buy(traveler, B_TAXI);
        uint256 t2 = _buy(alice, B_TAXI);
        uint256 t3 = _buy(bob, B_TAXI);
        uint256 rail = _buy(bob, B_RAIL);

        _report(oracle, D1, t1);
        _report(oracle, D1, t2);
        assertEq(insurance.issuedForRun(P_TAXI_COVER, D1), 2);
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.TripCapReached.selector, P_TAXI_COVER, D1, 2));
        insurance.reportDelay(D1, t3, 45);
        // nothing recorded by the refused report
        assertFalse(insurance.compensated(t3, D1));
        assertEq(insurance.issuedForRun(P_TAXI_COVER, D1), 2);
        assertEq(insurance.balanceOf(bob), 0);

        // another run of the product still pays, and the cap is per product
        assertTrue(_report(oracle, D2, t3) != 0);
        assertEq(insurance.issuedForRun(P_TAXI_COVER, D2), 1);
        assertTrue(_report(oracle, D1, rail) != 0);
        assertEq(insurance.balanceOf(bob), 2);
    }

    function test_DailyCapPerPolicy() public {
        _caps(0, 2);
        uint256 id = _buy(traveler, B_TAXI);
        uint256 other = _buy(alice, B_TAXI);
        uint64 day = _today();

        _report(oracle, D1, id);
        _report(oracle, D2, id);
        assertEq(insurance.issuedOnDay(id, day), 2);
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.DailyCapReached.selector, id, day, 2));
        insurance.reportDelay(D3, id, 45);
        assertFalse(insurance.compensated(id, D3));
        assertEq(insurance.issuedOnDay(id, day), 2);
        // the cap is per policy
        _report(oracle, D3, other);

        // next UTC day (the 3-day ticket still covers): pays again
        vm.warp((uint256(day) + 1) * 1 days);
        assertTrue(_report(oracle, D3, id) != 0);
        assertEq(insurance.issuedOnDay(id, day + 1), 1);
        assertEq(insurance.issuedOnDay(id, day), 2);
        assertEq(insurance.balanceOf(traveler), 3);
    }

    function test_CapsCheckedAtQuorumVote() public {
        vm.prank(admin);
        insurance.setQuorum(2);
        _caps(1, 0);
        uint256 t1 = _buy(traveler, B_TAXI);
        uint256 t2 = _buy(alice, B_TAXI);

        assertEq(_report(oracle, D1, t1), 0);
        assertEq(insurance.issuedForRun(P_TAXI_COVER, D1), 0); // a vote below quorum issues nothing
        assertTrue(_report(oracle2, D1, t1) != 0);
        assertEq(insurance.issuedForRun(P_TAXI_COVER, D1), 1);

        // a first vote on a run whose cap is used up is still recorded; the completing vote reverts
        assertEq(_report(oracle, D1, t2), 0);
        vm.prank(oracle2);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.TripCapReached.selector, P_TAXI_COVER, D1, 1));
        insurance.reportDelay(D1, t2, 45);
        (uint8 n,) = insurance.votes(t2, D1);
        assertEq(n, 1);
        assertFalse(insurance.hasVoted(t2, D1, oracle2));
        assertFalse(insurance.compensated(t2, D1));
        assertEq(insurance.balanceOf(alice), 0);
    }

    function test_DailyCapWithQuorumPaysNextDay() public {
        vm.prank(admin);
        insurance.setQuorum(2);
        _caps(0, 1);
        uint256 id = _buy(traveler, B_TAXI);
        uint64 day = _today();
        _report(oracle, D1, id);
        _report(oracle2, D1, id);
        assertEq(_report(oracle, D2, id), 0);
        vm.prank(oracle2);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.DailyCapReached.selector, id, day, 1));
        insurance.reportDelay(D2, id, 45);

        vm.warp((uint256(day) + 1) * 1 days);
        uint256 vid = _report(oracle2, D2, id); // the first vote was kept
        assertTrue(vid != 0);
        assertEq(insurance.issuedOnDay(id, day + 1), 1);
    }

    function test_PoolCapAppliesOnTopOfProductCaps() public {
        _caps(5, 5);
        vm.prank(admin);
        insurance.setPoolCap(1000, 30 days);
        uint256 id = _buy(traveler, B_TAXI);
        _report(oracle, D1, id); // 900 of 1000
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(DelayInsurance.PoolCapReached.selector, 900, 1000));
        insurance.reportDelay(D2, id, 45);
        // the refused voucher is not counted against the product's caps
        assertEq(insurance.issuedForRun(P_TAXI_COVER, D2), 0);
        assertEq(insurance.issuedOnDay(id, _today()), 1);
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_ProductThreshold(uint32 threshold, uint32 delayMinutes, uint128 value) public {
        value = uint128(bound(value, 1, type(uint128).max));
        _setTerms(P_TAXI_COVER, _pt(threshold, value, 1 days, TAXI, 0, 0));
        uint256 id = _buy(traveler, B_TAXI);
        vm.prank(oracle);
        if (delayMinutes < threshold) {
            vm.expectRevert(abi.encodeWithSelector(DelayInsurance.BelowThreshold.selector, delayMinutes, threshold));
            insurance.reportDelay(D1, id, delayMinutes);
            assertEq(insurance.balanceOf(traveler), 0);
        } else {
            uint256 vid = insurance.reportDelay(D1, id, delayMinutes);
            assertEq(insurance.voucher(vid).value, value);
            assertEq(insurance.voucher(vid).delayMinutes, delayMinutes);
            assertEq(insurance.ownerOf(vid), traveler);
        }
    }

    /// n reports on distinct runs of one policy in one day, then n holders on one run: min(n, cap) pay each time
    function testFuzz_CapsBoundVouchers(uint8 tripCap, uint8 dayCap, uint8 n) public {
        tripCap = uint8(bound(tripCap, 0, 4));
        dayCap = uint8(bound(dayCap, 0, 4));
        n = uint8(bound(n, 1, 6));
        _caps(tripCap, dayCap);
        uint256 id = _buy(traveler, B_TAXI);
        uint256 paid;
        for (uint256 i; i < n; ++i) {
            vm.prank(oracle);
            try insurance.reportDelay(keccak256(abi.encode("run", i)), id, 45) returns (uint256) {
                ++paid;
            } catch (bytes memory err) {
                assertEq(bytes4(err), DelayInsurance.DailyCapReached.selector);
            }
        }
        assertEq(paid, dayCap == 0 ? n : (n < dayCap ? n : dayCap));
        assertEq(insurance.balanceOf(traveler), paid);

        paid = 0;
        for (uint256 i; i < n; ++i) {
            address holder = makeAddr(string.concat("holder", vm.toString(i)));
            fund(holder, 1000);
            vm.prank(holder);
            fare.approve(address(market), type(uint256).max);
            uint256 t = _buy(holder, B_TAXI);
            vm.prank(oracle);
            try insurance.reportDelay(D1, t, 45) returns (uint256) {
                ++paid;
            } catch (bytes memory err) {
                assertEq(bytes4(err), DelayInsurance.TripCapReached.selector);
            }
        }
        assertEq(paid, tripCap == 0 ? n : (n < tripCap ? n : tripCap));
        assertEq(insurance.issuedForRun(P_TAXI_COVER, D1), tripCap == 0 ? 0 : paid);
    }
}
