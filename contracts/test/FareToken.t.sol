// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {FareToken} from "../src/FareToken.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

contract FareTokenTest is Fixture {
    function test_Metadata() public view {
        assertEq(fare.name(), "Kippu Fare");
        assertEq(fare.symbol(), "FARE");
        assertEq(fare.decimals(), 2);
        assertEq(fare.MINTER_ROLE(), keccak256("MINTER_ROLE"));
        assertTrue(fare.hasRole(fare.DEFAULT_ADMIN_ROLE(), admin));
        assertFalse(fare.hasRole(fare.MINTER_ROLE(), admin));
    }

    function test_Mint() public {
        bytes32 ref = keccak256("pi_123");
        assertFalse(fare.paymentMinted(ref));
        vm.expectEmit(true, true, false, true, address(fare));
        emit FareToken.FareMinted(traveler, 2500, ref);
        vm.prank(fareMinter);
        fare.mint(traveler, 2500, ref);
        assertEq(fare.balanceOf(traveler), 2500);
        assertEq(fare.totalSupply(), 2500);
        assertTrue(fare.paymentMinted(ref));
    }

    function test_RevertWhen_MintDuplicatePaymentRef() public {
        bytes32 ref = keccak256("pi_123");
        vm.startPrank(fareMinter);
        fare.mint(traveler, 2500, ref);
        vm.expectRevert(abi.encodeWithSelector(FareToken.PaymentAlreadyMinted.selector, ref));
        fare.mint(stranger, 1, ref);
        vm.stopPrank();
        assertEq(fare.totalSupply(), 2500);
    }

    function test_RevertWhen_MintZeroAmount() public {
        vm.prank(fareMinter);
        vm.expectRevert(FareToken.ZeroAmount.selector);
        fare.mint(traveler, 0, keccak256("pi_0"));
        assertFalse(fare.paymentMinted(keccak256("pi_0")));
    }

    function test_RevertWhen_MintToZeroAddress() public {
        vm.prank(fareMinter);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, address(0)));
        fare.mint(address(0), 1, keccak256("pi_1"));
    }

    function test_RevertWhen_MintUnauthorized() public {
        bytes32 role = fare.MINTER_ROLE();
        vm.prank(stranger);
        vm.expectRevert(unauthorized(stranger, role));
        fare.mint(stranger, 1, keccak256("pi_x"));

        vm.prank(admin);
        vm.expectRevert(unauthorized(admin, role));
        fare.mint(admin, 1, keccak256("pi_x"));
    }

    function test_AdminCanRevokeMinter() public {
        bytes32 role = fare.MINTER_ROLE();
        vm.prank(admin);
        fare.revokeRole(role, fareMinter);
        vm.prank(fareMinter);
        vm.expectRevert(unauthorized(fareMinter, role));
        fare.mint(traveler, 1, keccak256("pi_y"));
    }

    function test_Permit() public {
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(travelerKey, address(market), 777, deadline);
        fare.permit(traveler, address(market), 777, deadline, v, r, s);
        assertEq(fare.allowance(traveler, address(market)), 777);
        assertEq(fare.nonces(traveler), 1);
    }

    function test_RevertWhen_PermitExpired() public {
        uint256 deadline = block.timestamp - 1;
        (uint8 v, bytes32 r, bytes32 s) = signPermit(travelerKey, address(market), 777, deadline);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612ExpiredSignature.selector, deadline));
        fare.permit(traveler, address(market), 777, deadline, v, r, s);
    }

    function testFuzz_MintPaymentRefIdempotent(address to, uint256 amount, uint256 amount2, bytes32 ref) public {
        vm.assume(to != address(0));
        amount = bound(amount, 1, type(uint128).max);
        amount2 = bound(amount2, 1, type(uint128).max);

        vm.startPrank(fareMinter);
        fare.mint(to, amount, ref);
        vm.expectRevert(abi.encodeWithSelector(FareToken.PaymentAlreadyMinted.selector, ref));
        fare.mint(to, amount2, ref);
        vm.stopPrank();

        assertTrue(fare.paymentMinted(ref));
        assertEq(fare.balanceOf(to), amount);
        assertEq(fare.totalSupply(), amount);
    }

    function testFuzz_DistinctRefsAccumulate(uint96 a, uint96 b, bytes32 ref1, bytes32 ref2) public {
        vm.assume(ref1 != ref2 && a > 0 && b > 0);
        vm.startPrank(fareMinter);
        fare.mint(traveler, a, ref1);
        fare.mint(traveler, b, ref2);
        vm.stopPrank();
        assertEq(fare.balanceOf(traveler), uint256(a) + b);
        assertTrue(fare.paymentMinted(ref1) && fare.paymentMinted(ref2));
    }
}
