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
        vm.prank(admin);
        insurance.setTerms(t);
        DelayInsurance.Terms memory got = insurance.terms();
        assertEq(got.thresholdMinutes, 60);
        assertEq(got.voucherValue, 1234);
        assertEq(got.voucherOperatorId, OP_BUS);
        assertEq(got.voucherLifetime, 7 days);
    }

    function test_RevertWhen_SetTermsInvalid() public {
        vm.prank(admin);
        vm.expectRevert(DelayInsurance.InvalidTerms.selector);
        insurance.setTerms(DelayInsurance.Terms(60, 1234, OP_BUS, 0));

        vm.expectRevert(DelayInsurance.InvalidTerms.selector);
        new DelayInsurance(admin, DelayInsurance.Terms(60, 1234, OP_BUS, 0));
    }

    function test_RevertWhen_SetTermsUnauthorized() public {
        vm.prank(oracle);
        vm.expectRevert(unauthorized(oracle, bytes32(0)));
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
}
