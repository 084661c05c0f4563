// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {Fixture} from "./utils/Fixture.sol";
import {FareToken} from "../src/FareToken.sol";
import {Ticket} from "../src/Ticket.sol";
import {Clearing} from "../src/Clearing.sol";
import {PlanMarket} from "../src/PlanMarket.sol";

/// @dev Drives the deployed system through random purchases, rides, payouts,
///      mints and transfers while keeping ghost accounting to check against.
contract KippuHandler is Test {
    FareToken internal fare;
    Ticket internal ticket;
    Clearing internal clearing;
    PlanMarket internal market;
    address internal fareMinter;
    address internal validator;
    address internal settler;

    address[] internal actors;
    uint32[] internal bundles;

    uint256 public ghostMinted;
    uint256 public ghostSold;
    uint256 public ghostPaidOut;
    uint256 public ghostPurchases;
    uint256 public ghostRides;
    uint256 internal refNonce;

    uint256[] public ticketIds;
    mapping(uint256 => uint32) public issuedRides;
    mapping(uint256 => uint32) public ridesTaken;

    constructor(
        FareToken fare_,
        Ticket ticket_,
        Clearing clearing_,
        PlanMarket market_,
        address fareMinter_,
        address validator_,
        address settler_,
        uint32[] memory bundles_
    ) {
        fare = fare_;
        ticket = ticket_;
        clearing = clearing_;
        market = market_;
        fareMinter = fareMinter_;
        validator = validator_;
        settler = settler_;
        bundles = bundles_;
        for (uint256 i; i < 4; ++i) {
            actors.push(makeAddr(string.concat("actor", vm.toString(i))));
        }
    }

    function ticketCount() external view returns (uint256) {
        return ticketIds.length;
    }

    function _mintFare(address to, uint256 amount) internal {
        bytes32 ref = keccak256(abi.encode("handler", refNonce++));
        vm.prank(fareMinter);
        fare.mint(to, amount, ref);
        ghostMinted += amount;
    }

    function mintFare(uint256 actorSeed, uint256 amount) external {
        amount = bound(amount, 1, 1e9);
        _mintFare(actors[actorSeed % actors.length], amount);
    }

    function transferFare(uint256 fromSeed, uint256 toSeed, uint256 amount) external {
        address from = actors[fromSeed % actors.length];
        address to = actors[toSeed % actors.length];
        amount = bound(amount, 0, fare.balanceOf(from));
        vm.prank(from);
        assertTrue(fare.transfer(to, amount));
    }

    function buy(uint256 actorSeed, uint256 bundleSeed, uint256 startOffset) external {
        address actor = actors[actorSeed % actors.length];
        uint32 bundleId = bundles[bundleSeed % bundles.length];
        (uint256 price,) = market.quote(bundleId);
        if (fare.balanceOf(actor) < price) _mintFare(actor, price);
        uint64 validFrom = startOffset % 3 == 0 ? 0 : uint64(block.timestamp + bound(startOffset, 0, 2 days));

        uint256 firstTicket = ticket.nextTicketId();
        vm.startPrank(actor);
        fare.approve(address(market), price);
        market.buy(bundleId, validFrom, price);
        vm.stopPrank();
        ghostSold += price;
        ++ghostPurchases;

        for (uint256 id = firstTicket; id < ticket.nextTicketId(); ++id) {
            ticketIds.push(id);
            issuedRides[id] = ticket.ticketData(id).ridesLeft;
        }
    }

    function recordRide(uint256 ticketSeed) external {
        if (ticketIds.length == 0) return;
        uint256 id = ticketIds[ticketSeed % ticketIds.length];
        vm.prank(validator);
        try ticket.recordRide(id) {
            ++ridesTaken[id];
            ++ghostRides;
        } catch {}
    }

    function closePeriod() external {
        uint256 owed = clearing.totalUnpaid();
        vm.prank(settler);
        clearing.closePeriod();
        ghostPaidOut += owed;
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 0, 12 hours));
    }
}

contract InvariantsTest is Fixture {
    KippuHandler internal handler;
    uint32 internal constant BUS_BUNDLE = 200;

    function setUp() public override {
        super.setUp();
        uint32[] memory ids = new uint32[](1);
        ids[0] = P_BUS_2;
        vm.prank(admin);
        market.setBundle(BUS_BUNDLE, ids, 0);

        uint32[] memory bundles = new uint32[](2);
        bundles[0] = BUNDLE;
        bundles[1] = BUS_BUNDLE;
        handler = new KippuHandler(fare, ticket, clearing, market, fareMinter, validator, settler, bundles);

        targetContract(address(handler));
    }

    function invariant_EscrowEqualsTotalUnpaid() public view {
        assertEq(fare.balanceOf(address(clearing)), clearing.totalUnpaid());
    }

    function invariant_TotalSupplyEqualsMinted() public view {
        assertEq(fare.totalSupply(), handler.ghostMinted());
    }

    function invariant_UnpaidSumsToTotal() public view {
        uint32[] memory ops = clearing.operatorIds();
        uint256 sum;
        for (uint256 i; i < ops.length; ++i) {
            sum += clearing.unpaid(ops[i]);
        }
        assertEq(sum, clearing.totalUnpaid());
    }

    function invariant_SalesConserved() public view {
        assertEq(handler.ghostSold(), handler.ghostPaidOut() + clearing.totalUnpaid());
        assertEq(
            fare.balanceOf(railPayee) + fare.balanceOf(busPayee) + fare.balanceOf(bikePayee), handler.ghostPaidOut()
        );
    }

    function invariant_TicketRidesWithinIssued() public view {
        uint256 n = handler.ticketCount();
        assertEq(ticket.nextTicketId(), n + 1);
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.ticketIds(i);
            uint32 issued = handler.issuedRides(id);
            uint32 left = ticket.ticketData(id).ridesLeft;
            if (issued == ticket.UNLIMITED_RIDES()) {
                assertEq(left, issued);
            } else {
                assertLe(left, issued);
                assertEq(uint256(left) + handler.ridesTaken(id), issued);
            }
        }
    }
}
