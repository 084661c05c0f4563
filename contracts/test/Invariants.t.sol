// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {Vm} from "forge-std/Vm.sol";
import {console} from "forge-std/console.sol";
import {Fixture} from "./utils/Fixture.sol";
import {FareToken} from "../src/FareToken.sol";
import {Ticket} from "../src/Ticket.sol";
import {Clearing} from "../src/Clearing.sol";
import {PlanMarket} from "../src/PlanMarket.sol";
import {DelayInsurance} from "../src/DelayInsurance.sol";

/// @dev Drives the deployed system through random purchases, ride batches, refunds (by the
///      holder and by the relayer), delay reports, voucher redemptions, settlements (closePeriod
///      and settlePeriod with random valid adjustments), replays of the last ride batch and the
///      last settlement, mints and transfers while keeping ghost accounting to check against.
///      Settlements are checked against a model of the three steps (vouchers out of the
///      insurer's claim, adjustments, payout), and ride batches against a model of the ticket
///      rules (each ride judged at its tap time), as they happen.
contract KippuHandler is Test {
    FareToken internal fare;
    Ticket internal ticket;
    Clearing internal clearing;
    PlanMarket internal market;
    address internal fareMinter;
    address internal validator;
    address internal settler;
    address internal relayer;
    address internal anchorer;

    address[] internal actors;
    uint32[] internal bundles;

    uint256 public ghostMinted;
    uint256 public ghostSold;
    uint256 public ghostPaidOut;
    uint256 public ghostPurchases;
    uint256 public ghostRides;
    uint256 public ghostRefunded;
    uint256 public ghostRefunds;
    uint256 public ghostVotes;
    uint256 internal refNonce;

    DelayInsurance internal insurance;
    address[2] internal oracles;
    mapping(uint256 => bool) public burned;
    mapping(uint256 => bool) public insured;
    mapping(uint256 => address) public buyer;
    mapping(uint256 policyId => mapping(bytes32 delayId => uint256)) public reporters;
    mapping(uint256 ticketId => uint32) public productOf;
    mapping(uint256 voucherId => uint64) public voucherDay;
    uint256 public ghostCapRefusals;

    uint256[] public ticketIds;
    mapping(uint256 => uint32) public issuedRides;
    mapping(uint256 => uint32) public ridesTaken;

    address internal redeemer;
    uint32[] internal categoryOps; // operators that accept vouchers of a category (besides their own)
    uint256[] public voucherIds;
    mapping(uint256 voucherId => bool) public redeemed;
    uint256 public ghostRedeemed; // voucher value booked payable by redemptions
    uint256 public ghostRedemptions;
    uint256 public ghostVoucherSettled; // voucher value paid out of the insurer's claim
    uint256 public ghostVoucherSettlements; // settlements that paid vouchers
    uint256 public ghostSettlements; // settlePeriod calls
    uint256 public ghostClaimMoves; // adjustments applied
    mapping(uint32 operatorId => uint256) public ghostPaidTo;

    uint256 public ghostRideBatches;
    uint256 public ghostRidesRefused;
    uint256 public ghostActivations;
    uint256 public ghostReplays; // replayed ride batches and settlements, all refused
    uint256 public ghostHolderRefunds;
    bytes32[] public rideKeys;
    Ticket.Ride[] internal lastRides;
    uint64 internal lastSettledPeriod;
    Clearing.Transfer[] internal lastAdjustments;

    /// @dev every write Kippu made that took effect, as sent: who, to which contract, what
    struct Sent {
        address from;
        address to;
        bytes data;
    }

    Sent[] internal sent;
    uint256 public ghostResent; // recorded writes sent again
    uint256 public ghostResentEffects; // ...that went through or changed anything: must stay 0
    uint256 public ghostAnchors;
    uint256 internal requestNonce;

    constructor(
        FareToken fare_,
        Ticket ticket_,
        Clearing clearing_,
        PlanMarket market_,
        address fareMinter_,
        address validator_,
        address settler_,
        address relayer_,
        uint32[] memory bundles_
    ) {
        fare = fare_;
        ticket = ticket_;
        clearing = clearing_;
        market = market_;
        fareMinter = fareMinter_;
        validator = validator_;
        settler = settler_;
        relayer = relayer_;
        bundles = bundles_;
        anchorer = makeAddr("anchor"); // Fixture's ANCHOR_ROLE holder
        for (uint256 i; i < 4; ++i) {
            actors.push(makeAddr(string.concat("actor", vm.toString(i))));
        }
    }

    /// @dev one-shot wiring (a no-op when the fuzzer calls it)
    function setInsurance(
        DelayInsurance insurance_,
        address oracle1,
        address oracle2,
        address redeemer_,
        uint32[] memory categoryOps_
    ) external {
        if (address(insurance) != address(0)) return;
        insurance = insurance_;
        oracles = [oracle1, oracle2];
        redeemer = redeemer_;
        categoryOps = categoryOps_;
    }

    function ticketCount() external view returns (uint256) {
        return ticketIds.length;
    }

    function voucherCount() external view returns (uint256) {
        return voucherIds.length;
    }

    function _mintFare(address to, uint256 amount) internal {
        bytes32 ref = keccak256(abi.encode("handler", refNonce++));
        vm.prank(fareMinter);
        fare.mint(to, amount, ref);
        ghostMinted += amount;
        _sent(fareMinter, address(fare), abi.encodeCall(fare.mint, (to, amount, ref)));
    }

    function _sent(address from, address to, bytes memory data) internal {
        sent.push(Sent(from, to, data));
    }

    function sentCount() external view returns (uint256) {
        return sent.length;
    }

    /// @dev Everything a replay could change: FARE (supply, escrow, every holder Kippu pays or
    ///      sells to), claims and payables, the period, tickets, plans, batches and vouchers.
    function _fingerprint() internal view returns (bytes32 h) {
        h = keccak256(
            abi.encode(
                fare.totalSupply(),
                fare.balanceOf(address(clearing)),
                clearing.totalUnpaid(),
                clearing.currentPeriod(),
                ticket.nextTicketId(),
                insurance.totalPayable()
            )
        );
        for (uint256 i; i < voucherIds.length; ++i) {
            h = keccak256(abi.encode(h, insurance.voucher(voucherIds[i])));
        }
        for (uint256 i; i < actors.length; ++i) {
            h = keccak256(abi.encode(h, fare.balanceOf(actors[i]), insurance.balanceOf(actors[i])));
        }
        uint32[] memory ops = clearing.operatorIds();
        for (uint256 i; i < ops.length; ++i) {
            h = keccak256(abi.encode(h, clearing.unpaid(ops[i]), fare.balanceOf(clearing.operatorPayee(ops[i]))));
        }
        for (uint256 i; i < ticketIds.length; ++i) {
            h = keccak256(abi.encode(h, _ridesLeft(ticketIds[i])));
        }
    }

    /// @dev Any write Kippu made, sent again exactly as it was (a dropped or reorganised
    ///      transaction re-signed at a new nonce, a retry after a lost receipt): the contracts
    ///      must refuse it on its business key, and nothing may change.
    function resend(uint256 seed) external {
        uint256 n = sent.length;
        if (n == 0) return;
        Sent memory w = sent[seed % n];
        bytes32 before = _fingerprint();
        vm.prank(w.from);
        (bool ok,) = w.to.call(w.data);
        if (ok || _fingerprint() != before) ++ghostResentEffects;
        ++ghostResent;
    }

    /// @dev a tap batch's root anchored (the root is the batch's key off chain)
    function anchor(uint256 seed, uint32 taps) external {
        bytes32 root = keccak256(abi.encode("tap batch", seed));
        if (clearing.batchOf(root) != 0) return;
        vm.prank(anchorer);
        clearing.anchorTapBatch(root, taps);
        _sent(anchorer, address(clearing), abi.encodeCall(clearing.anchorTapBatch, (root, taps)));
        ++ghostAnchors;
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

        // an allowance left over (as wallets often approve more than one price) must not let a
        // purchase sent again buy a second plan: the request id refuses it
        if (fare.balanceOf(actor) < 2 * price) _mintFare(actor, price);
        bytes32 requestId = keccak256(abi.encode("purchase request", ++requestNonce));
        uint256 firstTicket = ticket.nextTicketId();
        vm.startPrank(actor);
        fare.approve(address(market), 2 * price);
        market.buy(requestId, bundleId, validFrom, price);
        vm.stopPrank();
        _sent(actor, address(market), abi.encodeCall(market.buy, (requestId, bundleId, validFrom, price)));
        ghostSold += price;
        ++ghostPurchases;

        for (uint256 id = firstTicket; id < ticket.nextTicketId(); ++id) {
            ticketIds.push(id);
            Ticket.TicketData memory d = ticket.ticketData(id);
            issuedRides[id] = d.ridesLeft;
            insured[id] = d.flags & ticket.FLAG_INSURED() != 0;
            productOf[id] = d.productId;
            buyer[id] = actor;
        }
    }

    function rideBatchCount() external view returns (uint256) {
        return rideKeys.length;
    }

    /// @dev a batch of 1..12 taps: mostly of known tickets (repeats included), most of them inside
    ///      the ticket's window, others up to two days back, some of tickets never minted, some
    ///      dated after the block; every ride's outcome must be what the model of the rules says
    function recordRides(uint256 seed, uint256 count) external {
        uint256 n = bound(count, 1, 12);
        Ticket.Ride[] memory rides = new Ticket.Ride[](n);
        for (uint256 i; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            uint256 id = ticketIds.length == 0 || r % 10 == 0
                ? ticket.nextTicketId() + (r >> 4) % 3
                : ticketIds[(r >> 4) % ticketIds.length];
            uint256 time = (r >> 64) % 12 == 0
                ? block.timestamp + 1 + (r >> 72) % 1 hours
                : block.timestamp - ((r >> 128) % 2 days) % block.timestamp;
            if ((r >> 192) % 3 != 0) time = _inWindow(id, time, r >> 200);
            rides[i] = Ticket.Ride(id, uint64(time));
        }
        (uint8[] memory reasons, uint32[] memory lefts) = _modelRides(rides);
        bytes32 key = keccak256(abi.encode("ride batch", rideKeys.length));

        vm.recordLogs();
        vm.prank(validator);
        uint32 recorded = ticket.recordRides(key, rides);
        _sent(validator, address(ticket), abi.encodeCall(ticket.recordRides, (key, rides)));
        Vm.Log[] memory logs = vm.getRecordedLogs();

        uint256 item;
        uint256 accepted;
        bytes32 recordedSig = Ticket.RideRecorded.selector;
        bytes32 refusedSig = Ticket.RideRefused.selector;
        for (uint256 j; j < logs.length; ++j) {
            bytes32 sig = logs[j].topics[0];
            if (sig == Ticket.TicketActivated.selector) ++ghostActivations;
            if (sig != recordedSig && sig != refusedSig) continue;
            uint256 id = rides[item].tokenId;
            assertEq(uint256(logs[j].topics[1]), id, "ride event out of order");
            if (reasons[item] == 0) {
                assertEq(sig, recordedSig, "model accepts the ride");
                assertEq(abi.decode(logs[j].data, (uint32)), lefts[item], "rides left");
                ++ridesTaken[id];
                ++accepted;
            } else {
                assertEq(sig, refusedSig, "model refuses the ride");
                assertEq(logs[j].topics[2], key);
                assertEq(abi.decode(logs[j].data, (uint8)), reasons[item], "refusal reason");
                ++ghostRidesRefused;
            }
            ++item;
        }
        assertEq(item, n, "one event per ride");
        assertEq(recorded, accepted);
        ghostRides += accepted;
        ++ghostRideBatches;
        rideKeys.push(key);
        delete lastRides;
        for (uint256 i; i < n; ++i) {
            lastRides.push(rides[i]);
        }
    }

    /// @dev a time in [validFrom, min(validUntil, now + 1)) of ticket `id` if there is one, else `time`
    function _inWindow(uint256 id, uint256 time, uint256 r) internal view returns (uint256) {
        try ticket.ticketData(id) returns (Ticket.TicketData memory d) {
            uint256 end = d.validUntil < block.timestamp + 1 ? d.validUntil : block.timestamp + 1;
            if (end > d.validFrom) return d.validFrom + r % (end - d.validFrom);
        } catch {}
        return time;
    }

    /// @dev the ticket rules, applied in order on copies of the tickets the batch touches
    function _modelRides(Ticket.Ride[] memory rides)
        internal
        view
        returns (uint8[] memory reasons, uint32[] memory lefts)
    {
        uint256 n = rides.length;
        reasons = new uint8[](n);
        lefts = new uint32[](n);
        uint256[] memory ids = new uint256[](n);
        Ticket.TicketData[] memory data = new Ticket.TicketData[](n);
        bool[] memory known = new bool[](n);
        for (uint256 i; i < n; ++i) {
            uint256 id = rides[i].tokenId;
            uint256 k;
            while (k < i && ids[k] != id) ++k;
            if (k == i) {
                ids[i] = id;
                try ticket.ticketData(id) returns (Ticket.TicketData memory d) {
                    data[i] = d;
                    known[i] = true;
                } catch {}
            }
            Ticket.TicketData memory t = data[k];
            uint256 time = rides[i].time;
            if (!known[k]) reasons[i] = ticket.RIDE_UNKNOWN();
            else if (time > block.timestamp) reasons[i] = ticket.RIDE_IN_FUTURE();
            else if (time < t.validFrom) reasons[i] = ticket.RIDE_NOT_YET_VALID();
            else if (time >= t.validUntil) reasons[i] = ticket.RIDE_EXPIRED();
            else if (t.ridesLeft == 0) reasons[i] = ticket.RIDE_NO_RIDES_LEFT();
            if (reasons[i] != 0) continue;
            if (t.ridesLeft != ticket.UNLIMITED_RIDES()) --t.ridesLeft;
            if (t.validity == ticket.ROLLING() && t.flags & ticket.FLAG_USED() == 0) {
                t.validFrom = uint40(time);
                t.validUntil = uint40(time + uint256(t.rollingDays) * 1 days);
            }
            t.flags |= ticket.FLAG_USED();
            lefts[i] = t.ridesLeft;
        }
    }

    /// @dev the last ride batch sent again (Kippu retrying after a lost receipt): refused whole,
    ///      no ticket changes
    function replayRides() external {
        uint256 n = lastRides.length;
        if (n == 0) return;
        bytes32 key = rideKeys[rideKeys.length - 1];
        uint32[] memory before = new uint32[](n);
        for (uint256 i; i < n; ++i) {
            before[i] = _ridesLeft(lastRides[i].tokenId);
        }
        vm.prank(validator);
        try ticket.recordRides(key, lastRides) {
            assertTrue(false, "a recorded ride batch was recorded again");
        } catch (bytes memory err) {
            assertEq(err, abi.encodeWithSelector(Ticket.RidesAlreadyRecorded.selector, key));
        }
        for (uint256 i; i < n; ++i) {
            assertEq(_ridesLeft(lastRides[i].tokenId), before[i]);
        }
        ++ghostReplays;
    }

    function _ridesLeft(uint256 id) internal view returns (uint32) {
        try ticket.ticketData(id) returns (Ticket.TicketData memory d) {
            return d.ridesLeft;
        } catch {
            return 0;
        }
    }

    /// @dev biased to the most recent tickets (still inside refund / cover windows)
    function _recent(uint256 seed) internal view returns (uint256) {
        uint256 n = ticketIds.length;
        uint256 k = n < 6 ? n : 6;
        return ticketIds[n - 1 - seed % k];
    }

    /// @dev a refund by the holder or by the relayer: it never goes through for a ticket with a
    ///      ride on chain, nor, by the holder, once the ticket is valid
    function refund(uint256 ticketSeed, bool byRelayer) external {
        if (ticketIds.length == 0) return;
        uint256 id = _recent(ticketSeed);
        if (burned[id]) return;
        uint64 validFrom = ticket.ticketData(id).validFrom;
        address by = byRelayer ? relayer : buyer[id];
        vm.prank(by);
        try market.refund(id) returns (uint256 amount) {
            _sent(by, address(market), abi.encodeCall(market.refund, (id)));
            assertEq(ridesTaken[id], 0, "refunded a ticket with a recorded ride");
            if (!byRelayer) {
                assertLt(block.timestamp, validFrom, "holder refunded a valid ticket");
                ++ghostHolderRefunds;
            }
            burned[id] = true;
            ghostRefunded += amount;
            ++ghostRefunds;
        } catch {}
    }

    function reportDelay(uint256 ticketSeed, uint256 oracleSeed, uint256 delaySeed, uint32 minutes_) external {
        if (ticketIds.length == 0) return;
        uint256 id = _recent(ticketSeed);
        bytes32 delayId = bytes32(delaySeed % 3);
        address o = oracles[oracleSeed % 2];
        uint32 mins = uint32(bound(minutes_, 10, 120));
        vm.prank(o);
        try insurance.reportDelay(delayId, id, mins) returns (uint256 vid) {
            _sent(o, address(insurance), abi.encodeCall(insurance.reportDelay, (delayId, id, mins)));
            ++reporters[id][delayId];
            ++ghostVotes;
            if (vid != 0) {
                voucherDay[vid] = uint64(block.timestamp / 1 days);
                voucherIds.push(vid);
            }
        } catch (bytes memory err) {
            bytes4 sel = bytes4(err);
            if (sel == DelayInsurance.TripCapReached.selector || sel == DelayInsurance.DailyCapReached.selector) {
                ++ghostCapRefusals;
            }
        }
    }

    /// @dev both oracles report the same delay of a recent ticket (reaches the quorum of 2 when
    ///      the ticket is covered and neither had voted yet), so vouchers are common enough
    function reportDelayBoth(uint256 ticketSeed, uint256 delaySeed, uint32 minutes_) external {
        this.reportDelay(ticketSeed, 0, delaySeed, minutes_);
        this.reportDelay(ticketSeed, 1, delaySeed, minutes_);
    }

    /// @dev redeems one of the newest vouchers, if unexpired, at its operator or, for a voucher with a category, at
    ///      one of the operators of that category
    function redeem(uint256 voucherSeed, uint256 opSeed) external {
        uint256 n = voucherIds.length;
        if (n == 0) return;
        uint256 vid = voucherIds[n - 1 - voucherSeed % (n < 3 ? n : 3)]; // one of the newest
        if (redeemed[vid]) return;
        DelayInsurance.Voucher memory v = insurance.voucher(vid);
        if (block.timestamp >= v.expiry) return;
        uint32 op = v.operatorId;
        if (v.category != bytes32(0) && opSeed % 2 == 1) op = categoryOps[(opSeed >> 1) % categoryOps.length];
        vm.prank(redeemer);
        insurance.redeem(vid, op);
        _sent(redeemer, address(insurance), abi.encodeCall(insurance.redeem, (vid, op)));
        redeemed[vid] = true;
        ghostRedeemed += v.value;
        ++ghostRedemptions;
    }

    function closePeriod() external {
        _settle(0, false);
    }

    function settlePeriod(uint256 seed) external {
        _settle(seed, true);
    }

    /// @dev settles the period (up to 3 random valid adjustments) and checks every payee got
    ///      what a model of the three steps says
    function _settle(uint256 seed, bool withAdjustments) internal {
        (uint32[] memory ops, uint256[] memory model, uint256 settled) = _modelVouchers();
        Clearing.Transfer[] memory adj = _randomAdjustments(ops, model, withAdjustments ? seed % 4 : 0, seed);
        uint256[] memory before = new uint256[](ops.length);
        for (uint256 i; i < ops.length; ++i) {
            before[i] = fare.balanceOf(clearing.operatorPayee(ops[i]));
        }
        uint256 owedTotal = clearing.totalUnpaid();
        uint256 payableBefore = insurance.totalPayable();
        uint64 period = clearing.currentPeriod();

        vm.prank(settler);
        if (withAdjustments) clearing.settlePeriod(period, adj);
        else clearing.closePeriod(period);
        _sent(
            settler,
            address(clearing),
            withAdjustments
                ? abi.encodeCall(clearing.settlePeriod, (period, adj))
                : abi.encodeCall(clearing.closePeriod, (period))
        );
        lastSettledPeriod = period;
        delete lastAdjustments;
        for (uint256 i; i < adj.length; ++i) {
            lastAdjustments.push(adj[i]);
        }

        uint256 paid;
        for (uint256 i; i < ops.length; ++i) {
            assertEq(fare.balanceOf(clearing.operatorPayee(ops[i])) - before[i], model[i], "payout != model");
            ghostPaidTo[ops[i]] += model[i];
            paid += model[i];
        }
        assertEq(paid, owedTotal, "payouts != totalUnpaid before the close");
        assertEq(payableBefore - insurance.totalPayable(), settled, "voucher value settled != model");
        ghostPaidOut += owedTotal;
        ghostVoucherSettled += settled;
        if (settled != 0) ++ghostVoucherSettlements;
        if (withAdjustments) ++ghostSettlements;
        ghostClaimMoves += adj.length;
    }

    /// @dev unpaid claims after step 1 (vouchers out of the insurer's claim), and the value settled
    function _modelVouchers() internal view returns (uint32[] memory ops, uint256[] memory model, uint256 settled) {
        ops = clearing.operatorIds();
        uint256 n = ops.length;
        model = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            model[i] = clearing.unpaid(ops[i]);
        }
        (address ins, uint32 insurerId) = clearing.insurance();
        if (ins == address(0)) return (ops, model, 0);
        uint256 x;
        while (ops[x] != insurerId) ++x;
        for (uint256 i; i < n; ++i) {
            if (i == x) continue;
            uint256 owed = insurance.payableTo(ops[i]);
            uint256 amount = owed < model[x] ? owed : model[x];
            model[x] -= amount;
            model[i] += amount;
            settled += amount;
        }
    }

    /// @dev up to `k` valid adjustments (step 2) on top of `model`, which they update
    function _randomAdjustments(uint32[] memory ops, uint256[] memory model, uint256 k, uint256 seed)
        internal
        pure
        returns (Clearing.Transfer[] memory adj)
    {
        uint256 n = ops.length;
        adj = new Clearing.Transfer[](k);
        uint256 m;
        for (uint256 j; j < k; ++j) {
            uint256 r = uint256(keccak256(abi.encode(seed, j)));
            uint256 f = r % n;
            uint256 t = (f + 1 + (r >> 8) % (n - 1)) % n;
            if (model[f] == 0) continue;
            uint256 amount = _boundPure(r >> 16, 1, model[f]);
            adj[m++] = Clearing.Transfer(ops[f], ops[t], amount);
            model[f] -= amount;
            model[t] += amount;
        }
        assembly {
            mstore(adj, m)
        }
    }

    function _boundPure(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }

    /// @dev the last settlement sent again: refused, nothing paid or moved
    function replaySettlement() external {
        uint64 period = lastSettledPeriod;
        if (period == 0) return;
        uint64 current = clearing.currentPeriod();
        uint256 unpaid = clearing.totalUnpaid();
        uint256 payable_ = insurance.totalPayable();
        uint256 escrow = fare.balanceOf(address(clearing));
        vm.prank(settler);
        try clearing.settlePeriod(period, lastAdjustments) {
            assertTrue(false, "a settled period was settled again");
        } catch (bytes memory err) {
            assertEq(err, abi.encodeWithSelector(Clearing.WrongPeriod.selector, period, current));
        }
        vm.prank(settler);
        try clearing.closePeriod(period) {
            assertTrue(false, "a settled period was closed again");
        } catch (bytes memory err) {
            assertEq(err, abi.encodeWithSelector(Clearing.WrongPeriod.selector, period, current));
        }
        assertEq(clearing.currentPeriod(), current);
        assertEq(clearing.totalUnpaid(), unpaid);
        assertEq(insurance.totalPayable(), payable_);
        assertEq(fare.balanceOf(address(clearing)), escrow);
        ++ghostReplays;
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 0, 12 hours));
    }
}

contract InvariantsTest is Fixture {
    KippuHandler internal handler;
    uint32 internal constant BUS_BUNDLE = 200;

    uint32 internal constant REFUND_BUNDLE = 300;
    uint32 internal constant P_REFUNDABLE = 90;
    uint32 internal constant COVER_BUNDLE = 700;
    uint32 internal constant P_COVER = 70; // the insurer's insured delay cover: its price is the premium
    uint32 internal constant ROLL_BUNDLE = 800;
    uint32 internal constant P_ROLL = 80; // 2-day rolling bus pass, 5 rides, first ride within a day
    address internal oracle2 = makeAddr("oracle2");

    function setUp() public override {
        super.setUp();
        uint32[] memory ids = new uint32[](1);
        ids[0] = P_BUS_2;
        vm.startPrank(catalog);
        market.setBundle(BUS_BUNDLE, ids, 0);
        PlanMarket.ProductConfig memory c = fixedProduct(OP_BIKE, 700, 2 days, 3, true);
        c.refundBps = 9000;
        c.refundWindow = 1 days;
        market.setProduct(P_REFUNDABLE, c);
        ids = new uint32[](2);
        ids[0] = P_REFUNDABLE;
        ids[1] = P_RAIL_DAY;
        market.setBundle(REFUND_BUNDLE, ids, 500);
        market.setProduct(P_COVER, fixedProduct(OP_INSURER, 300, 1 days, 1, true));
        ids = new uint32[](2);
        ids[0] = P_BUS_2;
        ids[1] = P_COVER;
        market.setBundle(COVER_BUNDLE, ids, 0);
        c = fixedProduct(OP_BUS, 400, 2 days, 5, false);
        c.validity = 1;
        c.activationWindow = 1 days;
        market.setProduct(P_ROLL, c);
        ids = new uint32[](1);
        ids[0] = P_ROLL;
        market.setBundle(ROLL_BUNDLE, ids, 0);
        // bus and bike also accept the rail product's vouchers
        insurance.setOperatorCategory(OP_BUS, keccak256("rail"));
        insurance.setOperatorCategory(OP_BIKE, keccak256("rail"));
        // the rail day pass (in BUNDLE and REFUND_BUNDLE) has its own, capped terms; the bike leg uses the global ones
        insurance.setProductTerms(
            P_RAIL_DAY,
            DelayInsurance.ProductTerms({
                thresholdMinutes: 30,
                voucherValue: 800,
                voucherOperatorId: OP_RAIL,
                voucherLifetime: 7 days,
                voucherCategory: keccak256("rail"),
                maxPerTrip: 2,
                maxPerDay: 1
            })
        );
        vm.stopPrank();
        vm.startPrank(admin);
        insurance.setQuorum(2);
        insurance.grantRole(insurance.ORACLE_ROLE(), oracle2);
        vm.stopPrank();
        addInsurer(); // operator OP_INSURER, credited the premiums of P_COVER

        uint32[] memory bundles = new uint32[](5);
        bundles[0] = BUNDLE;
        bundles[1] = BUS_BUNDLE;
        bundles[2] = REFUND_BUNDLE;
        bundles[3] = COVER_BUNDLE;
        bundles[4] = ROLL_BUNDLE;
        handler = new KippuHandler(fare, ticket, clearing, market, fareMinter, validator, settler, relayer, bundles);
        uint32[] memory categoryOps = new uint32[](2);
        categoryOps[0] = OP_BUS;
        categoryOps[1] = OP_BIKE;
        handler.setInsurance(insurance, oracle, oracle2, redeemer, categoryOps);

        targetContract(address(handler));
        // the actions only: the handler's getters would otherwise take most of each run's calls
        bytes4[] memory actions = new bytes4[](17);
        actions[0] = KippuHandler.mintFare.selector;
        actions[1] = KippuHandler.transferFare.selector;
        actions[2] = KippuHandler.buy.selector;
        actions[3] = KippuHandler.recordRides.selector;
        actions[4] = KippuHandler.replayRides.selector;
        actions[5] = KippuHandler.refund.selector;
        actions[6] = KippuHandler.reportDelay.selector;
        actions[7] = KippuHandler.reportDelayBoth.selector;
        actions[8] = KippuHandler.redeem.selector;
        actions[9] = KippuHandler.closePeriod.selector;
        actions[10] = KippuHandler.settlePeriod.selector;
        actions[11] = KippuHandler.replaySettlement.selector;
        actions[12] = KippuHandler.warp.selector;
        actions[13] = KippuHandler.recordRides.selector; // twice: rides are the most frequent traffic
        actions[14] = KippuHandler.anchor.selector;
        actions[15] = KippuHandler.resend.selector;
        actions[16] = KippuHandler.resend.selector; // twice: every kind of write gets sent again
        targetSelector(FuzzSelector({addr: address(handler), selectors: actions}));
    }

    /// @dev Issue 20: replaying any write Kippu recorded (purchase, mint, rides, refund, vote,
    ///      redemption, settlement, anchor) changes nothing.
    function invariant_ReplayingARecordedWriteChangesNothing() public view {
        assertEq(handler.ghostResentEffects(), 0, "a write sent again took effect again");
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
        assertEq(handler.ghostSold(), handler.ghostPaidOut() + clearing.totalUnpaid() + handler.ghostRefunded());
        assertEq(
            fare.balanceOf(railPayee) + fare.balanceOf(busPayee) + fare.balanceOf(bikePayee)
                + fare.balanceOf(insurerPayee),
            handler.ghostPaidOut()
        );
    }

    /// @dev each payee holds exactly what the settlements' model paid its operator (vouchers and
    ///      adjustments only move claims between operators)
    function invariant_PayeesHoldModelledPayouts() public view {
        uint32[] memory ops = clearing.operatorIds();
        uint256 sum;
        for (uint256 i; i < ops.length; ++i) {
            assertEq(fare.balanceOf(clearing.operatorPayee(ops[i])), handler.ghostPaidTo(ops[i]));
            sum += handler.ghostPaidTo(ops[i]);
        }
        assertEq(sum, handler.ghostPaidOut());
    }

    /// @dev DelayInsurance: totalPayable == sum of payableTo; every redeemed voucher's value is either
    ///      still payable or was paid out of the insurer's claim
    function invariant_VoucherPayablesConserved() public view {
        uint32[] memory ops = clearing.operatorIds(); // the handler redeems only at registered operators
        uint256 sum;
        for (uint256 i; i < ops.length; ++i) {
            sum += insurance.payableTo(ops[i]);
        }
        assertEq(sum, insurance.totalPayable(), "totalPayable != sum payableTo");
        assertEq(handler.ghostRedeemed(), handler.ghostVoucherSettled() + insurance.totalPayable());
        assertEq(insurance.payableTo(OP_INSURER), 0); // no voucher is redeemed at the insurer here
    }

    function invariant_TicketRidesWithinIssued() public view {
        uint256 n = handler.ticketCount();
        assertEq(ticket.nextTicketId(), n + 1);
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.ticketIds(i);
            if (handler.burned(id)) continue;
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

    /// @dev every batch the handler recorded stays recorded, so a replay of any of them is refused
    function invariant_RecordedBatchesStayRecorded() public view {
        uint256 n = handler.rideBatchCount();
        for (uint256 i; i < n; ++i) {
            assertTrue(ticket.ridesRecorded(handler.rideKeys(i)));
        }
    }

    /// @dev total FARE supply == minted - burned (FARE is never burnt: refunds return escrow)
    function invariant_SupplyConservedAcrossHolders() public view {
        assertEq(fare.totalSupply(), handler.ghostMinted());
    }

    /// @dev every voucher belongs to an insured, unrefunded ticket whose delay reached quorum
    function invariant_NoVoucherWithoutQuorumOnInsuredTicket() public view {
        uint256 issued;
        for (uint256 vid = 1;; ++vid) {
            try insurance.voucher(vid) returns (DelayInsurance.Voucher memory v) {
                ++issued;
                assertTrue(handler.insured(v.policyId), "voucher for an uninsured ticket");
                assertGe(handler.reporters(v.policyId, v.delayId), insurance.quorum(), "quorum not reached");
                assertTrue(insurance.compensated(v.policyId, v.delayId));
            } catch {
                break;
            }
        }
        assertLe(issued * insurance.quorum(), handler.ghostVotes());
    }

    /// @dev vouchers of a capped product: per (product, run) <= maxPerTrip and per (policy, UTC day)
    ///      <= maxPerDay, matching the contract's counters; every voucher carries its policy's terms
    function invariant_ProductCapsHold() public view {
        (DelayInsurance.ProductTerms memory pt, bool isSet) = insurance.productTerms(P_RAIL_DAY);
        assertTrue(isSet);
        uint256 n;
        while (true) {
            try insurance.voucher(n + 1) {
                ++n;
            } catch {
                break;
            }
        }
        DelayInsurance.Voucher[] memory vs = new DelayInsurance.Voucher[](n);
        for (uint256 i; i < n; ++i) {
            vs[i] = insurance.voucher(i + 1);
            bool capped = handler.productOf(vs[i].policyId) == P_RAIL_DAY;
            assertEq(vs[i].value, capped ? pt.voucherValue : VOUCHER_VALUE, "voucher value");
            assertEq(vs[i].category, capped ? pt.voucherCategory : bytes32(0), "voucher category");
            assertGe(vs[i].delayMinutes, capped ? pt.thresholdMinutes : THRESHOLD, "below threshold");
        }
        for (uint256 d; d < 3; ++d) {
            uint256 perRun;
            for (uint256 i; i < n; ++i) {
                if (vs[i].delayId == bytes32(d) && handler.productOf(vs[i].policyId) == P_RAIL_DAY) ++perRun;
            }
            assertLe(perRun, pt.maxPerTrip, "trip cap exceeded");
            assertEq(perRun, insurance.issuedForRun(P_RAIL_DAY, bytes32(d)));
        }
        for (uint256 i; i < n; ++i) {
            if (handler.productOf(vs[i].policyId) != P_RAIL_DAY) continue;
            uint64 day = handler.voucherDay(i + 1);
            uint256 perDay;
            for (uint256 j; j < n; ++j) {
                if (vs[j].policyId == vs[i].policyId && handler.voucherDay(j + 1) == day) ++perDay;
            }
            assertLe(perDay, pt.maxPerDay, "daily cap exceeded");
            assertEq(perDay, insurance.issuedOnDay(vs[i].policyId, day));
        }
    }

    function afterInvariant() public view {
        // run statistics, visible with -vv
        console.log("purchases", handler.ghostPurchases());
        console.log("ride batches", handler.ghostRideBatches());
        console.log("rides", handler.ghostRides());
        console.log("rides refused", handler.ghostRidesRefused());
        console.log("rolling activations", handler.ghostActivations());
        console.log("replays refused", handler.ghostReplays());
        console.log("refunds", handler.ghostRefunds());
        console.log("refunds by the holder", handler.ghostHolderRefunds());
        console.log("oracle votes", handler.ghostVotes());
        console.log("cap refusals", handler.ghostCapRefusals());
        console.log("voucher redemptions", handler.ghostRedemptions());
        console.log("settlePeriod calls", handler.ghostSettlements());
        console.log("claim moves", handler.ghostClaimMoves());
        console.log("settlements paying vouchers", handler.ghostVoucherSettlements());
        console.log("anchors", handler.ghostAnchors());
        console.log("writes sent again (all refused)", handler.ghostResent());
    }

    /// @dev the handler's refund and quorum paths really fire (not only reverted-and-caught)
    function test_HandlerPathsReachable() public {
        handler.buy(0, 2, 0); // REFUND_BUNDLE: refundable insured bike leg + insured rail leg
        uint256 bike = ticket.nextTicketId() - 2;
        handler.reportDelay(1, 0, 0, 30); // rail leg, oracle 1
        assertEq(insurance.balanceOf(handler.buyer(bike)), 0); // lone report: nothing
        handler.reportDelay(1, 1, 0, 40); // oracle 2 -> quorum
        assertEq(insurance.balanceOf(handler.buyer(bike)), 1);
        handler.refund(1, false); // bike leg (head): valid from now, so the holder may not
        assertEq(handler.ghostRefunds(), 0);
        handler.refund(1, true); // unused, inside the window: the relayer may
        assertEq(handler.ghostRefunds(), 1);
        invariant_NoVoucherWithoutQuorumOnInsuredTicket();
        invariant_SalesConserved();
        invariant_EscrowEqualsTotalUnpaid();
        invariant_TicketRidesWithinIssued();
        invariant_ProductCapsHold();
    }

    /// @dev every kind of write the handler makes, then each sent again: all refused, nothing changes
    function test_HandlerResendsEveryKindOfWrite() public {
        handler.mintFare(0, 5000);
        handler.buy(0, 2, 0); // REFUND_BUNDLE: bike leg (refundable) + insured rail leg
        handler.reportDelayBoth(1, 0, 45); // the bike leg (as in test_HandlerPathsReachable): quorum, a voucher
        assertEq(handler.voucherCount(), 1);
        handler.redeem(0, 0);
        handler.refund(1, true); // the bike leg, unused, by the relayer
        assertEq(handler.ghostRefunds(), 1);
        handler.buy(1, 0, 0);
        handler.recordRides(7, 3);
        handler.anchor(1, 3);
        handler.settlePeriod(5);
        handler.closePeriod();
        uint256 n = handler.sentCount();
        assertGe(n, 11, "every kind of write recorded");
        for (uint256 i; i < n; ++i) {
            handler.resend(i);
        }
        assertEq(handler.ghostResent(), n);
        invariant_ReplayingARecordedWriteChangesNothing();
        invariant_EscrowEqualsTotalUnpaid();
        invariant_SalesConserved();
    }

    /// @dev the handler really runs into the product caps (the rail day pass: 2 per run, 1 per policy and day)
    function test_HandlerCapPathsReachable() public {
        for (uint256 i; i < 3; ++i) {
            handler.buy(i, 2, 0); // REFUND_BUNDLE: bike leg, then the capped rail leg; 3 different actors
        }
        // the rail legs are ticketIds[1], [3], [5]; _recent(seed) = ticketIds[5 - seed % 6]
        uint256[3] memory seeds = [uint256(4), 2, 0];
        for (uint256 i; i < 3; ++i) {
            handler.reportDelay(seeds[i], 0, 0, 45); // run 0, oracle 1
            handler.reportDelay(seeds[i], 1, 0, 45); // oracle 2 -> quorum
        }
        assertEq(insurance.issuedForRun(P_RAIL_DAY, bytes32(0)), 2);
        assertEq(handler.ghostCapRefusals(), 1); // third holder on run 0
        handler.reportDelay(4, 0, 1, 45); // first rail leg, run 1: already paid today
        handler.reportDelay(4, 1, 1, 45);
        assertEq(handler.ghostCapRefusals(), 2);
        assertEq(insurance.balanceOf(handler.buyer(handler.ticketIds(1))), 1);
        invariant_ProductCapsHold();
        invariant_NoVoucherWithoutQuorumOnInsuredTicket();
    }

    /// @dev rides are modelled (rolling activation at the tap included), a ridden ticket is not
    ///      refunded, a holder refunds before validity, and replays are refused and change nothing
    function test_HandlerRidesRefundsAndReplays() public {
        handler.buy(0, 4, 0); // ROLL_BUNDLE, valid from now: ticketIds[0]
        handler.buy(1, 2, 1); // REFUND_BUNDLE, valid from a later start: ticketIds[1] (bike), [2] (rail)
        vm.warp(block.timestamp + 1 hours);
        uint256 batches;
        while (handler.ghostActivations() == 0 || handler.ghostRides() < 3) {
            handler.recordRides(batches++, 12);
        }
        assertGt(handler.ghostRidesRefused(), 0);
        uint256 rolling = handler.ticketIds(0);
        assertEq(ticket.ticketData(rolling).flags & ticket.FLAG_USED(), ticket.FLAG_USED());
        handler.refund(5, true); // _recent(5) = ticketIds[0], the ridden rolling pass (not refundable anyway)
        handler.refund(1, false); // the bike leg, by its holder, before its start: refunded if unridden
        if (handler.ridesTaken(handler.ticketIds(1)) == 0) assertEq(handler.ghostHolderRefunds(), 1);

        uint256 ridesBefore = handler.ghostRides();
        handler.replayRides();
        handler.settlePeriod(7);
        handler.replaySettlement();
        assertEq(handler.ghostReplays(), 2);
        assertEq(handler.ghostRides(), ridesBefore);
        invariant_TicketRidesWithinIssued();
        invariant_RecordedBatchesStayRecorded();
        _checkSettlementInvariants();
    }

    function _checkSettlementInvariants() internal view {
        invariant_EscrowEqualsTotalUnpaid();
        invariant_UnpaidSumsToTotal();
        invariant_SalesConserved();
        invariant_PayeesHoldModelledPayouts();
        invariant_VoucherPayablesConserved();
    }

    /// @dev the handler really settles vouchers out of premiums (fully, and partially with the rest
    ///      carried over) and really applies adjustments
    function test_HandlerSettlesVouchers() public {
        handler.buy(0, 3, 0); // COVER_BUNDLE: bus leg + the insurer's insured cover (premium 300)
        handler.buy(1, 3, 0);
        assertEq(clearing.unpaid(OP_INSURER), 600);
        // cover legs are ticketIds[1] and [3]; _recent(seed) = ticketIds[3 - seed % 4]
        handler.reportDelay(0, 0, 0, 30); // oracle 1
        handler.reportDelay(0, 1, 0, 30); // oracle 2 -> voucher: global terms, 500 at rail
        assertEq(handler.voucherCount(), 1);
        handler.redeem(0, 0);
        assertEq(handler.ghostRedemptions(), 1);
        assertEq(insurance.payableTo(OP_RAIL), VOUCHER_VALUE);

        handler.settlePeriod(3); // up to 3 adjustments
        assertEq(handler.ghostSettlements(), 1);
        assertEq(handler.ghostVoucherSettlements(), 1);
        assertEq(handler.ghostVoucherSettled(), VOUCHER_VALUE);
        assertGt(handler.ghostClaimMoves(), 0);
        assertEq(insurance.totalPayable(), 0);
        _checkSettlementInvariants();

        // a second voucher with no premium left: carried over, then partly paid by one new premium
        handler.reportDelay(2, 0, 0, 30); // ticketIds[1]
        handler.reportDelay(2, 1, 0, 30);
        handler.redeem(0, 0); // the newest
        assertEq(handler.ghostRedemptions(), 2);
        handler.closePeriod();
        assertEq(insurance.payableTo(OP_RAIL), VOUCHER_VALUE);
        handler.buy(2, 3, 0); // premium 300
        handler.closePeriod();
        assertEq(handler.ghostVoucherSettlements(), 2);
        assertEq(insurance.payableTo(OP_RAIL), VOUCHER_VALUE - 300);
        assertEq(handler.ghostVoucherSettled(), VOUCHER_VALUE + 300);
        _checkSettlementInvariants();
    }
}
