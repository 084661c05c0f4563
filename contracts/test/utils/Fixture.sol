// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {FareToken} from "../../src/FareToken.sol";
import {Ticket} from "../../src/Ticket.sol";
import {Clearing} from "../../src/Clearing.sol";
import {DelayInsurance} from "../../src/DelayInsurance.sol";
import {PlanMarket} from "../../src/PlanMarket.sol";

/// @dev Full Kippu deployment with roles wired the way the deployer does it (one address per
///      role here, so a test shows which role a call needs).
abstract contract Fixture is Test {
    uint256 private _requestNonce;

    /// @dev a fresh purchase request id (what Kippu chooses off chain for each purchase intent)
    function _rid() internal returns (bytes32) {
        return keccak256(abi.encode("purchase request", ++_requestNonce));
    }

    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    uint32 internal constant OP_RAIL = 1;
    uint32 internal constant OP_BUS = 2;
    uint32 internal constant OP_BIKE = 3;
    /// @dev registered only by `addInsurer`
    uint32 internal constant OP_INSURER = 7;

    uint32 internal constant P_RAIL_DAY = 10; // 10.00 FARE, 1 day, unlimited, insured
    uint32 internal constant P_BUS_2 = 20; // 3.33 FARE, 1 day, 2 rides
    uint32 internal constant P_BIKE_WEEK = 30; // 2.50 FARE, 7 days, 10 rides
    uint32 internal constant BUNDLE = 100; // all three, 10% off

    uint32 internal constant THRESHOLD = 15;
    uint128 internal constant VOUCHER_VALUE = 500;
    uint64 internal constant VOUCHER_LIFETIME = 30 days;
    uint16 internal constant MAX_CONCESSION_BPS = 5000;

    address internal admin = makeAddr("admin");
    address internal fareMinter = makeAddr("fareMinter");
    address internal relayer = makeAddr("relayer");
    address internal pauser = makeAddr("pauser");
    address internal validator = makeAddr("validator");
    address internal settler = makeAddr("settler");
    address internal anchor = makeAddr("anchor");
    address internal oracle = makeAddr("oracle");
    address internal redeemer = makeAddr("redeemer");
    address internal catalog = makeAddr("catalog");
    address internal railPayee = makeAddr("railPayee");
    address internal busPayee = makeAddr("busPayee");
    address internal bikePayee = makeAddr("bikePayee");
    address internal insurerPayee = makeAddr("insurerPayee");
    address internal stranger = makeAddr("stranger");

    uint256 internal travelerKey = 0xA11CE;
    address internal traveler;

    uint256 private _rideNonce;

    FareToken internal fare;
    Ticket internal ticket;
    Clearing internal clearing;
    DelayInsurance internal insurance;
    PlanMarket internal market;

    function setUp() public virtual {
        vm.warp(1_750_000_000);
        traveler = vm.addr(travelerKey);
        vm.label(traveler, "traveler");

        fare = new FareToken(admin);
        ticket = new Ticket(admin);
        insurance = new DelayInsurance(admin, defaultTerms());
        clearing = new Clearing(admin, fare, insurance);
        market = new PlanMarket(admin, fare, ticket, clearing, insurance, MAX_CONCESSION_BPS);

        vm.startPrank(admin);
        fare.grantRole(fare.MINTER_ROLE(), fareMinter);
        ticket.grantRole(ticket.MINTER_ROLE(), address(market));
        ticket.grantRole(ticket.VALIDATOR_ROLE(), validator);
        clearing.grantRole(clearing.MARKET_ROLE(), address(market));
        clearing.grantRole(clearing.SETTLER_ROLE(), settler);
        clearing.grantRole(clearing.ANCHOR_ROLE(), anchor);
        insurance.grantRole(insurance.MARKET_ROLE(), address(market));
        insurance.setTicketContract(ticket);
        insurance.grantRole(insurance.ORACLE_ROLE(), oracle);
        insurance.grantRole(insurance.REDEEMER_ROLE(), redeemer);
        insurance.grantRole(insurance.CLEARING_ROLE(), address(clearing));
        market.grantRole(market.RELAYER_ROLE(), relayer);
        market.grantRole(market.PAUSER_ROLE(), pauser);
        market.grantRole(market.CATALOG_ROLE(), catalog);
        clearing.grantRole(clearing.CATALOG_ROLE(), catalog);
        insurance.grantRole(insurance.CATALOG_ROLE(), catalog);
        vm.stopPrank();

        vm.startPrank(catalog);
        clearing.setOperator(OP_RAIL, railPayee);
        clearing.setOperator(OP_BUS, busPayee);
        clearing.setOperator(OP_BIKE, bikePayee);

        market.setProduct(P_RAIL_DAY, fixedProduct(OP_RAIL, 1000, 1 days, type(uint32).max, true));
        market.setProduct(P_BUS_2, fixedProduct(OP_BUS, 333, 1 days, 2, false));
        market.setProduct(P_BIKE_WEEK, fixedProduct(OP_BIKE, 250, 7 days, 10, false));
        uint32[] memory ids = new uint32[](3);
        ids[0] = P_RAIL_DAY;
        ids[1] = P_BUS_2;
        ids[2] = P_BIKE_WEEK;
        market.setBundle(BUNDLE, ids, 1000);
        vm.stopPrank();
    }

    /// @dev the insurer as an operator (credited premiums), paying redeemed vouchers at settlement
    function addInsurer() internal {
        vm.startPrank(catalog);
        clearing.setOperator(OP_INSURER, insurerPayee);
        clearing.setInsurance(address(insurance), OP_INSURER);
        vm.stopPrank();
    }

    function defaultTerms() internal pure returns (DelayInsurance.Terms memory) {
        return DelayInsurance.Terms({
            thresholdMinutes: THRESHOLD,
            voucherValue: VOUCHER_VALUE,
            voucherOperatorId: OP_RAIL,
            voucherLifetime: VOUCHER_LIFETIME
        });
    }

    function fixedProduct(uint32 operatorId, uint128 price, uint64 duration, uint32 rides, bool insured)
        internal
        pure
        returns (PlanMarket.ProductConfig memory c)
    {
        c.operatorId = operatorId;
        c.price = price;
        c.duration = duration;
        c.rides = rides;
        c.insurance = insured;
        c.transferable = true;
    }

    function fund(address to, uint256 amount) internal {
        bytes32 ref = keccak256(abi.encode("fund", to, amount, fare.totalSupply()));
        vm.prank(fareMinter);
        fare.mint(to, amount, ref);
    }

    function signPermit(uint256 key, address spender, uint256 value, uint256 deadline)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        address owner = vm.addr(key);
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, fare.nonces(owner), deadline));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", fare.DOMAIN_SEPARATOR(), structHash));
        (v, r, s) = vm.sign(key, digest);
    }

    /// @dev one ride for `recordRides`
    function rides1(uint256 tokenId, uint256 time) internal pure returns (Ticket.Ride[] memory r) {
        r = new Ticket.Ride[](1);
        r[0] = Ticket.Ride(tokenId, uint64(time));
    }

    /// @dev records one ride of `tokenId` at the current time in a batch of its own; returns the
    ///      number recorded (0 when refused)
    function ride(uint256 tokenId) internal returns (uint32) {
        return rideAt(tokenId, block.timestamp);
    }

    function rideAt(uint256 tokenId, uint256 time) internal returns (uint32) {
        bytes32 key = keccak256(abi.encode("ride", tokenId, time, _rideNonce++));
        vm.prank(validator);
        return ticket.recordRides(key, rides1(tokenId, time));
    }

    function unauthorized(address account, bytes32 role) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, account, role);
    }
}
