// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Script} from "forge-std/Script.sol";
import {FareToken} from "../src/FareToken.sol";
import {Ticket} from "../src/Ticket.sol";
import {Clearing} from "../src/Clearing.sol";
import {DelayInsurance} from "../src/DelayInsurance.sol";
import {PlanMarket} from "../src/PlanMarket.sol";

/// @notice Deploys the five Kippu contracts, wires them, hands every role to its key and leaves
///         the deploying key with nothing:
///         - admin (a cold address whose key stays offline): DEFAULT_ADMIN_ROLE on all five (it grants
///           roles), PlanMarket PAUSER_ROLE;
///         - minter: FareToken MINTER_ROLE;
///         - relayer: PlanMarket RELAYER_ROLE, DelayInsurance REDEEMER_ROLE;
///         - settler: Clearing SETTLER_ROLE + ANCHOR_ROLE, Ticket VALIDATOR_ROLE, DelayInsurance ORACLE_ROLE;
///         - catalog: CATALOG_ROLE on PlanMarket, Clearing and DelayInsurance;
///         - attestor (signs concession attestations, sends nothing): PlanMarket CONCESSION_ISSUER_ROLE;
///         - contracts: Ticket MINTER_ROLE, Clearing MARKET_ROLE and DelayInsurance MARKET_ROLE to the
///           market, DelayInsurance CLEARING_ROLE to Clearing, DelayInsurance's ticket contract.
///         Env: KIPPU_ADMIN, KIPPU_MINTER, KIPPU_RELAYER, KIPPU_SETTLER, KIPPU_CATALOG, KIPPU_ATTESTOR
///         (addresses, required, none of them the deploying key); optional KIPPU_MAX_CONCESSION_BPS
///         (default 5000), KIPPU_ORACLE_QUORUM (default 1 = single oracle), KIPPU_VOUCHER_POOL_CAP
///         (FARE cents per pool period, default 0 = no cap), KIPPU_VOUCHER_POOL_PERIOD (seconds,
///         default 30 days), KIPPU_INSURER_PAYEE (default none) + KIPPU_INSURER_OPERATOR_ID (default 4):
///         register the insurer as a Clearing operator and make it the voucher payer.
/// @dev    forge script script/Deploy.s.sol --rpc-url http://127.0.0.1:8545 --broadcast --private-key $KEY
contract Deploy is Script {
    struct Deployment {
        FareToken fare;
        Ticket ticket;
        Clearing clearing;
        DelayInsurance insurance;
        PlanMarket market;
    }

    /// @notice Who holds which role after deployment (see the contract comment).
    struct Roles {
        address admin;
        address minter;
        address relayer;
        address settler;
        address catalog;
        address attestor;
    }

    /// @notice Optional settings applied while the deploying key still holds the admin role.
    struct Settings {
        uint8 quorum;
        uint128 poolCap;
        uint64 poolPeriod;
        uint32 insurerId;
        address insurerPayee; // address(0) = no insurer yet
    }

    error DeployerHoldsRole(address deployer);
    error ZeroRoleHolder();

    function run() external returns (Deployment memory d) {
        DelayInsurance.Terms memory terms = DelayInsurance.Terms({
            thresholdMinutes: uint32(vm.envOr("KIPPU_DELAY_THRESHOLD_MINUTES", uint256(15))),
            voucherValue: uint128(vm.envOr("KIPPU_VOUCHER_VALUE", uint256(500))),
            voucherOperatorId: uint32(vm.envOr("KIPPU_VOUCHER_OPERATOR_ID", uint256(1))),
            voucherLifetime: uint64(vm.envOr("KIPPU_VOUCHER_LIFETIME", uint256(30 days)))
        });
        Roles memory roles = Roles({
            admin: vm.envAddress("KIPPU_ADMIN"),
            minter: vm.envAddress("KIPPU_MINTER"),
            relayer: vm.envAddress("KIPPU_RELAYER"),
            settler: vm.envAddress("KIPPU_SETTLER"),
            catalog: vm.envAddress("KIPPU_CATALOG"),
            attestor: vm.envAddress("KIPPU_ATTESTOR")
        });
        Settings memory settings = Settings({
            quorum: uint8(vm.envOr("KIPPU_ORACLE_QUORUM", uint256(1))),
            poolCap: uint128(vm.envOr("KIPPU_VOUCHER_POOL_CAP", uint256(0))),
            poolPeriod: uint64(vm.envOr("KIPPU_VOUCHER_POOL_PERIOD", uint256(30 days))),
            insurerId: uint32(vm.envOr("KIPPU_INSURER_OPERATOR_ID", uint256(4))),
            insurerPayee: vm.envOr("KIPPU_INSURER_PAYEE", address(0))
        });
        uint16 maxConcessionBps = uint16(vm.envOr("KIPPU_MAX_CONCESSION_BPS", uint256(5000)));
        vm.startBroadcast();
        (, address deployer,) = vm.readCallers();
        d = deployAll(deployer, roles, terms, maxConcessionBps, settings);
        vm.stopBroadcast();
    }

    /// @notice The whole flow; `deployer` must be the account making these calls.
    function deployAll(
        address deployer,
        Roles memory roles,
        DelayInsurance.Terms memory terms,
        uint16 maxConcessionBps,
        Settings memory settings
    ) public returns (Deployment memory d) {
        _checkRoles(deployer, roles);
        d = deploy(deployer, terms, maxConcessionBps);
        wire(d);
        configure(d, settings.quorum, settings.poolCap, settings.poolPeriod);
        if (settings.insurerPayee != address(0)) {
            // catalogue work: the deployer takes CATALOG_ROLE for it and drops it with the rest below
            d.clearing.grantRole(d.clearing.CATALOG_ROLE(), deployer);
            setInsurer(d, settings.insurerId, settings.insurerPayee);
        }
        grantRoles(d, roles);
        renounceAll(d, deployer);
    }

    /// @dev DelayInsurance before Clearing: Clearing pins it as the only voucher payables contract
    function deploy(address admin, DelayInsurance.Terms memory terms, uint16 maxConcessionBps)
        public
        returns (Deployment memory d)
    {
        d.fare = new FareToken(admin);
        d.ticket = new Ticket(admin);
        d.insurance = new DelayInsurance(admin, terms);
        d.clearing = new Clearing(admin, d.fare, d.insurance);
        d.market = new PlanMarket(admin, d.fare, d.ticket, d.clearing, d.insurance, maxConcessionBps);
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

    /// @dev must be called by an admin, after `wire`
    function grantRoles(Deployment memory d, Roles memory r) public {
        d.fare.grantRole(d.fare.DEFAULT_ADMIN_ROLE(), r.admin);
        d.ticket.grantRole(d.ticket.DEFAULT_ADMIN_ROLE(), r.admin);
        d.clearing.grantRole(d.clearing.DEFAULT_ADMIN_ROLE(), r.admin);
        d.insurance.grantRole(d.insurance.DEFAULT_ADMIN_ROLE(), r.admin);
        d.market.grantRole(d.market.DEFAULT_ADMIN_ROLE(), r.admin);
        d.market.grantRole(d.market.PAUSER_ROLE(), r.admin);

        d.fare.grantRole(d.fare.MINTER_ROLE(), r.minter);

        d.market.grantRole(d.market.RELAYER_ROLE(), r.relayer);
        d.insurance.grantRole(d.insurance.REDEEMER_ROLE(), r.relayer);

        d.clearing.grantRole(d.clearing.SETTLER_ROLE(), r.settler);
        d.clearing.grantRole(d.clearing.ANCHOR_ROLE(), r.settler);
        d.ticket.grantRole(d.ticket.VALIDATOR_ROLE(), r.settler);
        d.insurance.grantRole(d.insurance.ORACLE_ROLE(), r.settler);

        d.market.grantRole(d.market.CATALOG_ROLE(), r.catalog);
        d.clearing.grantRole(d.clearing.CATALOG_ROLE(), r.catalog);
        d.insurance.grantRole(d.insurance.CATALOG_ROLE(), r.catalog);

        d.market.grantRole(d.market.CONCESSION_ISSUER_ROLE(), r.attestor);
    }

    /// @dev `who` (the caller) gives up every role this flow gave it: the admin role on the five
    ///      contracts and Clearing's CATALOG_ROLE (held only when it registered the insurer;
    ///      renouncing a role one does not hold is a no-op)
    function renounceAll(Deployment memory d, address who) public {
        d.clearing.renounceRole(d.clearing.CATALOG_ROLE(), who);
        d.fare.renounceRole(d.fare.DEFAULT_ADMIN_ROLE(), who);
        d.ticket.renounceRole(d.ticket.DEFAULT_ADMIN_ROLE(), who);
        d.clearing.renounceRole(d.clearing.DEFAULT_ADMIN_ROLE(), who);
        d.insurance.renounceRole(d.insurance.DEFAULT_ADMIN_ROLE(), who);
        d.market.renounceRole(d.market.DEFAULT_ADMIN_ROLE(), who);
    }

    /// @dev must be called by a CATALOG_ROLE holder of Clearing, after `wire`: registers operator
    ///      `insurerId` (the insurer, credited the premiums of its cover products) with `payee`
    ///      and makes Clearing pay redeemed vouchers out of its claim
    function setInsurer(Deployment memory d, uint32 insurerId, address payee) public {
        d.clearing.setOperator(insurerId, payee);
        d.clearing.setInsurance(address(d.insurance), insurerId);
    }

    /// @dev must be called by the admin passed to `deploy`; quorum 1 = single oracle key
    function configure(Deployment memory d, uint8 quorum, uint128 poolCap, uint64 poolPeriod) public {
        if (quorum != d.insurance.quorum()) d.insurance.setQuorum(quorum);
        if (poolCap != 0) d.insurance.setPoolCap(poolCap, poolPeriod);
    }

    /// @dev renouncing strips the deployer of whatever it was also meant to hold, so it holds nothing
    function _checkRoles(address deployer, Roles memory r) private pure {
        address[6] memory holders = [r.admin, r.minter, r.relayer, r.settler, r.catalog, r.attestor];
        for (uint256 i; i < holders.length; ++i) {
            if (holders[i] == address(0)) revert ZeroRoleHolder();
            if (holders[i] == deployer) revert DeployerHoldsRole(deployer);
        }
    }
}
