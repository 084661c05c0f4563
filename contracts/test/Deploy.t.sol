// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Deploy} from "../script/Deploy.s.sol";
import {DelayInsurance} from "../src/DelayInsurance.sol";

contract DeployTest is Test {
    struct Grant {
        IAccessControl on;
        bytes32 role;
        address holder;
    }

    Deploy internal s;
    Deploy.Roles internal roles;

    function setUp() public {
        s = new Deploy();
        roles = Deploy.Roles({
            admin: makeAddr("admin"),
            minter: makeAddr("minter"),
            relayer: makeAddr("relayer"),
            settler: makeAddr("settler"),
            catalog: makeAddr("catalog"),
            attestor: makeAddr("attestor")
        });
    }

    function _terms() internal pure returns (DelayInsurance.Terms memory) {
        return DelayInsurance.Terms(15, 500, 1, 30 days);
    }

    function _settings(address insurerPayee) internal pure returns (Deploy.Settings memory) {
        return Deploy.Settings({quorum: 1, poolCap: 0, poolPeriod: 30 days, insurerId: 4, insurerPayee: insurerPayee});
    }

    /// @dev every role each contract defines and who must hold it after the flow; the script
    ///      contract `s` is the deploying account
    function _expected(Deploy.Deployment memory d) internal view returns (Grant[] memory g) {
        bytes32 admin = bytes32(0);
        g = new Grant[](21);
        uint256 i;
        g[i++] = Grant(d.fare, admin, roles.admin);
        g[i++] = Grant(d.fare, d.fare.MINTER_ROLE(), roles.minter);
        g[i++] = Grant(d.ticket, admin, roles.admin);
        g[i++] = Grant(d.ticket, d.ticket.MINTER_ROLE(), address(d.market));
        g[i++] = Grant(d.ticket, d.ticket.VALIDATOR_ROLE(), roles.settler);
        g[i++] = Grant(d.clearing, admin, roles.admin);
        g[i++] = Grant(d.clearing, d.clearing.MARKET_ROLE(), address(d.market));
        g[i++] = Grant(d.clearing, d.clearing.SETTLER_ROLE(), roles.settler);
        g[i++] = Grant(d.clearing, d.clearing.ANCHOR_ROLE(), roles.settler);
        g[i++] = Grant(d.clearing, d.clearing.CATALOG_ROLE(), roles.catalog);
        g[i++] = Grant(d.insurance, admin, roles.admin);
        g[i++] = Grant(d.insurance, d.insurance.MARKET_ROLE(), address(d.market));
        g[i++] = Grant(d.insurance, d.insurance.CLEARING_ROLE(), address(d.clearing));
        g[i++] = Grant(d.insurance, d.insurance.ORACLE_ROLE(), roles.settler);
        g[i++] = Grant(d.insurance, d.insurance.REDEEMER_ROLE(), roles.relayer);
        g[i++] = Grant(d.insurance, d.insurance.CATALOG_ROLE(), roles.catalog);
        g[i++] = Grant(d.market, admin, roles.admin);
        g[i++] = Grant(d.market, d.market.PAUSER_ROLE(), roles.admin);
        g[i++] = Grant(d.market, d.market.RELAYER_ROLE(), roles.relayer);
        g[i++] = Grant(d.market, d.market.CATALOG_ROLE(), roles.catalog);
        g[i++] = Grant(d.market, d.market.CONCESSION_ISSUER_ROLE(), roles.attestor);
    }

    /// @dev each account holds exactly the roles `_expected` gives it, the deployer none
    function _assertExactRoles(Deploy.Deployment memory d) internal view {
        address[9] memory accounts = [
            address(s),
            roles.admin,
            roles.minter,
            roles.relayer,
            roles.settler,
            roles.catalog,
            roles.attestor,
            address(d.market),
            address(d.clearing)
        ];
        Grant[] memory g = _expected(d);
        for (uint256 i; i < g.length; ++i) {
            for (uint256 a; a < accounts.length; ++a) {
                bool want = accounts[a] == g[i].holder;
                assertEq(g[i].on.hasRole(g[i].role, accounts[a]), want, string.concat("grant ", vm.toString(i)));
            }
        }
    }

    function test_DeployGivesEachKeyExactlyItsRoles() public {
        Deploy.Deployment memory d = s.deployAll(address(s), roles, _terms(), 5000, _settings(address(0)));
        _assertExactRoles(d);
        assertEq(address(d.insurance.ticketContract()), address(d.ticket));
        assertEq(address(d.clearing.fareToken()), address(d.fare));
        assertEq(address(d.clearing.insuranceContract()), address(d.insurance));
        assertEq(address(d.market.insuranceContract()), address(d.insurance));
        assertEq(d.market.maxConcessionBps(), 5000);
        (address ins,) = d.clearing.insurance();
        assertEq(ins, address(0)); // no insurer operator yet
    }

    /// @dev registering the insurer takes the catalogue role for a moment; it is dropped too
    function test_DeployWithInsurerLeavesDeployerNothing() public {
        Deploy.Deployment memory d = s.deployAll(address(s), roles, _terms(), 5000, _settings(address(0xBEEF)));
        _assertExactRoles(d);
        assertEq(d.clearing.operatorPayee(4), address(0xBEEF));
        (address ins, uint32 insurerId) = d.clearing.insurance();
        assertEq(ins, address(d.insurance));
        assertEq(insurerId, 4);
    }

    /// @dev the deployer key is worthless afterwards: it can neither grant nor use a role
    function test_DeployerCannotActAfterDeploy() public {
        Deploy.Deployment memory d = s.deployAll(address(s), roles, _terms(), 5000, _settings(address(0)));
        bytes32 minter = d.fare.MINTER_ROLE();
        vm.prank(address(s));
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, address(s), bytes32(0))
        );
        d.fare.grantRole(minter, address(s));
        // the admin can
        vm.prank(roles.admin);
        d.fare.grantRole(minter, makeAddr("second minter"));
    }

    function test_RevertWhen_DeployerIsARoleHolder() public {
        roles.relayer = address(s);
        vm.expectRevert(abi.encodeWithSelector(Deploy.DeployerHoldsRole.selector, address(s)));
        s.deployAll(address(s), roles, _terms(), 5000, _settings(address(0)));
        roles.relayer = address(0);
        vm.expectRevert(Deploy.ZeroRoleHolder.selector);
        s.deployAll(address(s), roles, _terms(), 5000, _settings(address(0)));
    }

    function test_DeployConfigures() public {
        Deploy.Deployment memory d = s.deploy(address(s), _terms(), 5000);
        s.wire(d);
        s.configure(d, 1, 0, 30 days);
        assertEq(d.insurance.quorum(), 1);
        (uint128 cap,) = d.insurance.poolCap();
        assertEq(cap, 0);
        s.configure(d, 3, 10_000, 7 days);
        assertEq(d.insurance.quorum(), 3);
        (uint128 cap2, uint64 len) = d.insurance.poolCap();
        assertEq(cap2, 10_000);
        assertEq(len, 7 days);
    }
}
