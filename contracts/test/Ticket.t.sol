// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Ticket} from "../src/Ticket.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

contract TicketTest is Fixture {
    address internal ticketMinter = makeAddr("ticketMinter");
    uint64 internal t0;

    function setUp() public override {
        super.setUp();
        t0 = uint64(block.timestamp);
        bytes32 role = ticket.MINTER_ROLE();
        vm.prank(admin);
        ticket.grantRole(role, ticketMinter);
    }

    function _mint(uint32 rides) internal returns (uint256) {
        vm.prank(ticketMinter);
        return ticket.mint(traveler, 7, OP_BUS, P_BUS_2, t0, t0 + 1 days, rides);
    }

    function test_Metadata() public view {
        assertEq(ticket.name(), "Kippu Ticket");
        assertEq(ticket.symbol(), "KTIX");
        assertEq(ticket.UNLIMITED_RIDES(), type(uint32).max);
        assertEq(ticket.MINTER_ROLE(), keccak256("MINTER_ROLE"));
        assertEq(ticket.VALIDATOR_ROLE(), keccak256("VALIDATOR_ROLE"));
        assertEq(ticket.nextTicketId(), 1);
        assertTrue(ticket.supportsInterface(type(IERC721).interfaceId));
        assertTrue(ticket.supportsInterface(type(IAccessControl).interfaceId));
    }

    function test_MintSequentialIds() public {
        vm.expectEmit(true, true, true, true, address(ticket));
        emit Ticket.TicketIssued(1, traveler, 7, OP_BUS, P_BUS_2, t0, t0 + 1 days, 2);
        assertEq(_mint(2), 1);
        assertEq(_mint(3), 2);
        assertEq(ticket.nextTicketId(), 3);
        assertEq(ticket.ownerOf(1), traveler);
        assertEq(ticket.balanceOf(traveler), 2);

        Ticket.TicketData memory d = ticket.ticketData(2);
        assertEq(d.operatorId, OP_BUS);
        assertEq(d.productId, P_BUS_2);
        assertEq(d.planId, 7);
        assertEq(d.validFrom, t0);
        assertEq(d.validUntil, t0 + 1 days);
        assertEq(d.ridesLeft, 3);
    }

    function test_RevertWhen_MintInvalidWindow() public {
        vm.startPrank(ticketMinter);
        vm.expectRevert(Ticket.InvalidWindow.selector);
        ticket.mint(traveler, 1, OP_BUS, P_BUS_2, t0, t0, 1);
        vm.expectRevert(Ticket.InvalidWindow.selector);
        ticket.mint(traveler, 1, OP_BUS, P_BUS_2, t0, t0 - 1, 1);
        vm.stopPrank();
        assertEq(ticket.nextTicketId(), 1);
    }

    function test_RevertWhen_MintUnauthorized() public {
        bytes32 role = ticket.MINTER_ROLE();
        vm.prank(stranger);
        vm.expectRevert(unauthorized(stranger, role));
        ticket.mint(traveler, 1, OP_BUS, P_BUS_2, t0, t0 + 1, 1);
    }

    function test_RecordRide() public {
        uint256 id = _mint(2);
        vm.startPrank(validator);
        vm.expectEmit(true, false, false, true, address(ticket));
        emit Ticket.RideRecorded(id, 1);
        ticket.recordRide(id);
        assertEq(ticket.ticketData(id).ridesLeft, 1);
        ticket.recordRide(id);
        assertEq(ticket.ticketData(id).ridesLeft, 0);
        vm.expectRevert(abi.encodeWithSelector(Ticket.NoRidesLeft.selector, id));
        ticket.recordRide(id);
        vm.stopPrank();
    }

    function test_RecordRideUnlimited() public {
        uint32 unlimited = ticket.UNLIMITED_RIDES();
        uint256 id = _mint(unlimited);
        vm.startPrank(validator);
        for (uint256 i; i < 5; ++i) {
            vm.expectEmit(true, false, false, true, address(ticket));
            emit Ticket.RideRecorded(id, unlimited);
            ticket.recordRide(id);
        }
        vm.stopPrank();
        assertEq(ticket.ticketData(id).ridesLeft, unlimited);
    }

    function test_RevertWhen_RecordRideZeroRideTicket() public {
        uint256 id = _mint(0);
        vm.prank(validator);
        vm.expectRevert(abi.encodeWithSelector(Ticket.NoRidesLeft.selector, id));
        ticket.recordRide(id);
    }

    function test_RevertWhen_RecordRideUnknownTicket() public {
        vm.prank(validator);
        vm.expectRevert(abi.encodeWithSelector(Ticket.UnknownTicket.selector, 42));
        ticket.recordRide(42);
    }

    function test_RevertWhen_RecordRideNotYetValid() public {
        vm.prank(ticketMinter);
        uint256 id = ticket.mint(traveler, 1, OP_BUS, P_BUS_2, t0 + 100, t0 + 200, 1);
        vm.prank(validator);
        vm.expectRevert(abi.encodeWithSelector(Ticket.NotYetValid.selector, id));
        ticket.recordRide(id);
        vm.warp(t0 + 100);
        vm.prank(validator);
        ticket.recordRide(id);
    }

    function test_RevertWhen_RecordRideExpired() public {
        uint256 id = _mint(5);
        vm.warp(t0 + 1 days - 1);
        vm.prank(validator);
        ticket.recordRide(id);
        vm.warp(t0 + 1 days);
        vm.prank(validator);
        vm.expectRevert(abi.encodeWithSelector(Ticket.TicketExpired.selector, id));
        ticket.recordRide(id);
    }

    function test_RevertWhen_RecordRideUnauthorized() public {
        uint256 id = _mint(5);
        bytes32 role = ticket.VALIDATOR_ROLE();
        vm.prank(ticketMinter);
        vm.expectRevert(unauthorized(ticketMinter, role));
        ticket.recordRide(id);
    }

    function test_RevertWhen_TicketDataUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(Ticket.UnknownTicket.selector, 1));
        ticket.ticketData(1);
    }

    function test_TicketIsTransferable() public {
        uint256 id = _mint(1);
        vm.prank(traveler);
        ticket.transferFrom(traveler, stranger, id);
        assertEq(ticket.ownerOf(id), stranger);
    }

    function testFuzz_RidesNeverExceedIssued(uint32 rides, uint8 attempts) public {
        rides = uint32(bound(rides, 0, 50));
        uint256 id = _mint(rides);
        uint256 ok;
        for (uint256 i; i < attempts; ++i) {
            vm.prank(validator);
            try ticket.recordRide(id) {
                ++ok;
            } catch (bytes memory err) {
                assertEq(err, abi.encodeWithSelector(Ticket.NoRidesLeft.selector, id));
            }
        }
        uint256 expected = attempts < rides ? attempts : rides;
        assertEq(ok, expected);
        assertEq(ticket.ticketData(id).ridesLeft, rides - expected);
    }
}
