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

    function _record(bytes32 key, Ticket.Ride[] memory rides) internal returns (uint32) {
        vm.prank(validator);
        return ticket.recordRides(key, rides);
    }

    function _rides(uint256 id, uint256 n, uint256 time) internal pure returns (Ticket.Ride[] memory r) {
        r = new Ticket.Ride[](n);
        for (uint256 i; i < n; ++i) {
            r[i] = Ticket.Ride(id, uint64(time));
        }
    }

    function test_RecordRides() public {
        uint256 id = _mint(2);
        bytes32 key = keccak256("batch 1");
        uint8 noRidesLeft = ticket.RIDE_NO_RIDES_LEFT();
        assertFalse(ticket.ridesRecorded(key));
        vm.expectEmit(true, false, false, true, address(ticket));
        emit Ticket.RideRecorded(id, 1);
        vm.expectEmit(true, false, false, true, address(ticket));
        emit Ticket.RideRecorded(id, 0);
        vm.expectEmit(true, true, false, true, address(ticket));
        emit Ticket.RideRefused(id, key, noRidesLeft);
        vm.expectEmit(true, false, false, true, address(ticket));
        emit Ticket.RidesRecorded(key, 2, 1);
        assertEq(_record(key, _rides(id, 3, t0)), 2);
        assertTrue(ticket.ridesRecorded(key));
        Ticket.TicketData memory d = ticket.ticketData(id);
        assertEq(d.ridesLeft, 0);
        assertEq(d.flags & ticket.FLAG_USED(), ticket.FLAG_USED());
    }

    function test_RecordRidesUnlimited() public {
        uint32 unlimited = ticket.UNLIMITED_RIDES();
        uint256 id = _mint(unlimited);
        for (uint256 i; i < 5; ++i) {
            vm.expectEmit(true, false, false, true, address(ticket));
            emit Ticket.RideRecorded(id, unlimited);
        }
        assertEq(_record("unlimited", _rides(id, 5, t0)), 5);
        assertEq(ticket.ticketData(id).ridesLeft, unlimited);
    }

    /// @dev every refusal reason in one batch; the one good ride in the middle is still recorded
    function test_RecordRidesRefusalReasons() public {
        vm.prank(ticketMinter);
        uint256 short = ticket.mint(traveler, 1, OP_BUS, P_BUS_2, t0, t0 + 100, 5);
        uint256 none = _mint(0);
        uint256 burnt = _mint(5);
        vm.prank(ticketMinter);
        ticket.burn(burnt);
        vm.prank(ticketMinter);
        uint256 later = ticket.mint(traveler, 1, OP_BUS, P_BUS_2, t0 + 100, t0 + 200, 1);
        vm.warp(t0 + 150);

        Ticket.Ride[] memory r = new Ticket.Ride[](7);
        r[0] = Ticket.Ride(42, uint64(t0)); // never minted
        r[1] = Ticket.Ride(burnt, uint64(t0));
        r[2] = Ticket.Ride(later, uint64(t0 + 99)); // before its window
        r[3] = Ticket.Ride(short, uint64(t0 + 100)); // at its validUntil
        r[4] = Ticket.Ride(none, uint64(t0));
        r[5] = Ticket.Ride(later, uint64(t0 + 151)); // after this block
        r[6] = Ticket.Ride(later, uint64(t0 + 150)); // the good one: at == block time is fine
        bytes32 key = keccak256("mixed");
        uint8[6] memory reasons = [
            ticket.RIDE_UNKNOWN(),
            ticket.RIDE_UNKNOWN(),
            ticket.RIDE_NOT_YET_VALID(),
            ticket.RIDE_EXPIRED(),
            ticket.RIDE_NO_RIDES_LEFT(),
            ticket.RIDE_IN_FUTURE()
        ];
        for (uint256 i; i < 6; ++i) {
            vm.expectEmit(true, true, false, true, address(ticket));
            emit Ticket.RideRefused(r[i].tokenId, key, reasons[i]);
        }
        vm.expectEmit(true, false, false, true, address(ticket));
        emit Ticket.RideRecorded(later, 0);
        vm.expectEmit(true, false, false, true, address(ticket));
        emit Ticket.RidesRecorded(key, 1, 6);
        assertEq(_record(key, r), 1);
        assertEq(ticket.ticketData(short).ridesLeft, 5); // the refused ride changed nothing
        assertEq(ticket.ticketData(short).flags & ticket.FLAG_USED(), 0);
        assertEq(ticket.ticketData(later).ridesLeft, 0);
    }

    /// @dev a gate that was offline forwards its taps later: each is judged at the tap's time
    function test_RecordRidesJudgedAtTapTime() public {
        uint256 id = _mint(2);
        vm.warp(t0 + 3 days); // the ticket expired at t0 + 1 day
        assertEq(_record("offline gate", _rides(id, 1, t0 + 1 days - 1)), 1);
        assertEq(ticket.ticketData(id).ridesLeft, 1);
        assertEq(_record("late tap", _rides(id, 1, t0 + 1 days)), 0);
        assertEq(ticket.ticketData(id).ridesLeft, 1);
    }

    /// @dev the batch key makes a batch count once: the same batch again reverts and changes nothing
    function test_RevertWhen_RecordRidesReplayed() public {
        uint256 id = _mint(5);
        bytes32 key = keccak256("root");
        assertEq(_record(key, _rides(id, 2, t0)), 2);
        vm.prank(validator);
        vm.expectRevert(abi.encodeWithSelector(Ticket.RidesAlreadyRecorded.selector, key));
        ticket.recordRides(key, _rides(id, 2, t0));
        vm.prank(validator); // whatever the batch holds
        vm.expectRevert(abi.encodeWithSelector(Ticket.RidesAlreadyRecorded.selector, key));
        ticket.recordRides(key, _rides(id, 1, t0));
        assertEq(ticket.ticketData(id).ridesLeft, 3);
        assertEq(_record(keccak256("next root"), _rides(id, 1, t0)), 1);
        assertEq(ticket.ticketData(id).ridesLeft, 2);
    }

    function test_RevertWhen_RecordRidesInvalidBatch() public {
        uint256 id = _mint(5);
        uint256 max = ticket.MAX_RIDES();
        vm.startPrank(validator);
        vm.expectRevert(Ticket.InvalidBatch.selector);
        ticket.recordRides("empty", new Ticket.Ride[](0));
        vm.expectRevert(Ticket.InvalidBatch.selector);
        ticket.recordRides("too long", _rides(id, max + 1, t0));
        vm.expectRevert(Ticket.InvalidBatch.selector);
        ticket.recordRides(bytes32(0), _rides(id, 1, t0));
        vm.stopPrank();
        assertFalse(ticket.ridesRecorded("too long"));
        assertEq(ticket.ticketData(id).ridesLeft, 5);
        assertEq(_record("max", _rides(id, max, t0)), 5); // the longest batch goes through
    }

    function test_RevertWhen_RecordRidesUnauthorized() public {
        uint256 id = _mint(5);
        bytes32 role = ticket.VALIDATOR_ROLE();
        vm.prank(ticketMinter);
        vm.expectRevert(unauthorized(ticketMinter, role));
        ticket.recordRides("b", _rides(id, 1, t0));
    }

    /// @dev each ride touches its ticket's one storage word with exactly one SLOAD and one SSTORE
    ///      (forge logs an SSTORE as a read too); besides that only the role and the batch key
    function test_RecordRidesOneSlotPerRide() public {
        uint256 n = 8;
        Ticket.Ride[] memory r = new Ticket.Ride[](n);
        for (uint256 i; i < n; ++i) {
            r[i] = Ticket.Ride(_mint(3), uint64(t0));
        }
        vm.record();
        _record("slots", r);
        (bytes32[] memory reads, bytes32[] memory writes) = vm.accesses(address(ticket));
        assertEq(writes.length, n + 1, "one write per ride + the batch key");
        assertEq(reads.length, 2 * n + 1 + 3, "rides + the role + the batch key's check and write");
        for (uint256 i; i < n; ++i) {
            // `_tickets` is storage slot 8 (forge inspect Ticket storageLayout)
            bytes32 slot = keccak256(abi.encode(r[i].tokenId, uint256(8)));
            assertTrue(vm.load(address(ticket), slot) != bytes32(0), "ticket slot");
            uint256 seen;
            for (uint256 j; j < reads.length; ++j) {
                if (reads[j] == slot) ++seen;
            }
            assertEq(seen, 2, "one SLOAD + one SSTORE per ride");
        }
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

    function testFuzz_RidesNeverExceedIssued(uint32 rides, uint16 attempts, uint8 batches) public {
        rides = uint32(bound(rides, 0, 50));
        attempts = uint16(bound(attempts, 1, ticket.MAX_RIDES()));
        batches = uint8(bound(batches, 1, 4));
        uint256 id = _mint(rides);
        uint256 ok;
        for (uint256 b; b < batches; ++b) {
            ok += _record(keccak256(abi.encode(b)), _rides(id, attempts, t0));
        }
        uint256 tried = uint256(attempts) * batches;
        uint256 expected = tried < rides ? tried : rides;
        assertEq(ok, expected);
        assertEq(ticket.ticketData(id).ridesLeft, rides - expected);
    }
}
