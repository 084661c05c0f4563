// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Script} from "forge-std/Script.sol";
import {FareToken} from "../src/FareToken.sol";
import {Ticket} from "../src/Ticket.sol";
import {Clearing} from "../src/Clearing.sol";
import {DelayInsurance} from "../src/DelayInsurance.sol";
import {PlanMarket} from "../src/PlanMarket.sol";

/// @notice Deploys the five Kippu contracts and wires the market's roles and
///         DelayInsurance's CLEARING_ROLE to Clearing (so settlement can pay redeemed
///         vouchers out of the insurer's claim). The broadcaster becomes admin of
///         everything; operational roles (FARE minter, relayer, validator, settler,
///         anchor, oracle, redeemer, pauser, concession issuer) and operators are
///         granted / registered afterwards by the admin. Once the insurer's operator
///         is registered, `clearing.setInsurance(insurance, insurerId)` must follow
///         (done here when KIPPU_INSURER_PAYEE is set).
///         Optional env: KIPPU_ORACLE_QUORUM (default 1 = single oracle),
///         KIPPU_VOUCHER_POOL_CAP (FARE cents per pool period, default 0 = no cap),
///         KIPPU_VOUCHER_POOL_PERIOD (seconds, default 30 days),
///         KIPPU_CONCESSION_ISSUER (address granted CONCESSION_ISSUER_ROLE, default none),
///         KIPPU_INSURER_PAYEE (default none) + KIPPU_INSURER_OPERATOR_ID (default 4): register
///         the insurer as a Clearing operator and set it as the voucher payer (`setInsurer`).
/// @dev    forge script script/Deploy.s.sol --rpc-url http://127.0.0.1:8545 --broadcast --private-key $KEY
contract Deploy is Script {
    struct Deployment {
        FareToken fare;
        Ticket ticket;
        Clearing clearing;
        DelayInsurance insurance;
        PlanMarket market;
    }

    function run() external returns (Deployment memory d) {
        DelayInsurance.Terms memory terms = DelayInsurance.Terms({
            thresholdMinutes: uint32(vm.envOr("KIPPU_DELAY_THRESHOLD_MINUTES", uint256(15))),
            voucherValue: uint128(vm.envOr("KIPPU_VOUCHER_VALUE", uint256(500))),
            voucherOperatorId: uint32(vm.envOr("KIPPU_VOUCHER_OPERATOR_ID", uint256(1))),
            voucherLifetime: uint64(vm.envOr("KIPPU_VOUCHER_LIFETIME", uint256(30 days)))
        });
        uint8 quorum = uint8(vm.envOr("KIPPU_ORACLE_QUORUM", uint256(1)));
        uint128 poolCap = uint128(vm.envOr("KIPPU_VOUCHER_POOL_CAP", uint256(0)));
        uint64 poolPeriod = uint64(vm.envOr("KIPPU_VOUCHER_POOL_PERIOD", uint256(30 days)));
        address issuer = vm.envOr("KIPPU_CONCESSION_ISSUER", address(0));
        address insurerPayee = vm.envOr("KIPPU_INSURER_PAYEE", address(0));
        uint32 insurerId = uint32(vm.envOr("KIPPU_INSURER_OPERATOR_ID", uint256(4)));
        vm.startBroadcast();
        d = deploy(msg.sender, terms);
        wire(d);
        configure(d, quorum, poolCap, poolPeriod, issuer);
        if (insurerPayee != address(0)) setInsurer(d, insurerId, insurerPayee);
        vm.stopBroadcast();
    }

    function deploy(address admin, DelayInsurance.Terms memory terms) public returns (Deployment memory d) {
        d.fare = new FareToken(admin);
        d.ticket = new Ticket(admin);
        d.clearing = new Clearing(admin, d.fare);
        d.insurance = new DelayInsurance(admin, terms);
        d.market = new PlanMarket(admin, d.fare, d.ticket, d.clearing, d.insurance);
    }

    /// @dev must be called by the admin passed to `deploy`
    function wire(Deployment memory d) public {
        d.ticket.grantRole(d.ticket.MINTER_ROLE(), address(d.market));
        d.clearing.grantRole(d.clearing.MARKET_ROLE(), address(d.market));
        d.insurance.grantRole(d.insurance.MARKET_ROLE(), address(d.market));
        d.insurance.setTicketContract(d.ticket);
        // settlement pays redeemed vouchers out of the insurer's claim and books it in DelayInsurance
        d.insurance.grantRole(d.insurance.CLEARING_ROLE(), address(d.clearing));
    }

    /// @dev must be called by the admin passed to `deploy`, after `wire`: registers operator
    ///      `insurerId` (the insurer, credited the premiums of its cover products) with `payee`
    ///      and makes Clearing pay redeemed vouchers out of its claim
    function setInsurer(Deployment memory d, uint32 insurerId, address payee) public {
        d.clearing.setOperator(insurerId, payee);
        d.clearing.setInsurance(address(d.insurance), insurerId);
    }

    /// @dev must be called by the admin passed to `deploy`; quorum 1 = single oracle key
    function configure(Deployment memory d, uint8 quorum, uint128 poolCap, uint64 poolPeriod, address issuer) public {
        if (quorum != d.insurance.quorum()) d.insurance.setQuorum(quorum);
        if (poolCap != 0) d.insurance.setPoolCap(poolCap, poolPeriod);
        if (issuer != address(0)) d.market.grantRole(d.market.CONCESSION_ISSUER_ROLE(), issuer);
    }
}
