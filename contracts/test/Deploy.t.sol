// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {Deploy} from "../script/Deploy.s.sol";
import {DelayInsurance} from "../src/DelayInsurance.sol";

contract DeployTest is Test {
    function test_DeployWiresMarketRoles() public {
        Deploy s = new Deploy();
        Deploy.Deployment memory d = s.deploy(address(s), DelayInsurance.Terms(15, 500, 1, 30 days));
        s.wire(d);
        address m = address(d.market);
        assertTrue(d.ticket.hasRole(d.ticket.MINTER_ROLE(), m));
        assertTrue(d.clearing.hasRole(d.clearing.MARKET_ROLE(), m));
        assertTrue(d.insurance.hasRole(d.insurance.MARKET_ROLE(), m));
        assertEq(address(d.insurance.ticketContract()), address(d.ticket));
        assertTrue(d.market.hasRole(d.market.DEFAULT_ADMIN_ROLE(), address(s)));
        assertEq(address(d.clearing.fareToken()), address(d.fare));
        assertEq(address(d.market.insuranceContract()), address(d.insurance));
        assertTrue(d.insurance.hasRole(d.insurance.CLEARING_ROLE(), address(d.clearing)));
        (address ins,) = d.clearing.insurance();
        assertEq(ins, address(0)); // no insurer operator yet
    }

    function test_DeploySetsInsurer() public {
        Deploy s = new Deploy();
        Deploy.Deployment memory d = s.deploy(address(s), DelayInsurance.Terms(15, 500, 1, 30 days));
        s.wire(d);
        s.setInsurer(d, 4, address(0xBEEF));
        assertEq(d.clearing.operatorPayee(4), address(0xBEEF));
        (address ins, uint32 insurerId) = d.clearing.insurance();
        assertEq(ins, address(d.insurance));
        assertEq(insurerId, 4);
    }

    function test_DeployConfigures() public {
        Deploy s = new Deploy();
        Deploy.Deployment memory d = s.deploy(address(s), DelayInsurance.Terms(15, 500, 1, 30 days));
        s.wire(d);
        s.configure(d, 1, 0, 30 days, address(0));
        assertEq(d.insurance.quorum(), 1);
        (uint128 cap,) = d.insurance.poolCap();
        assertEq(cap, 0);
        s.configure(d, 3, 10_000, 7 days, address(0xC0FFEE));
        assertEq(d.insurance.quorum(), 3);
        (uint128 cap2, uint64 len) = d.insurance.poolCap();
        assertEq(cap2, 10_000);
        assertEq(len, 7 days);
        assertTrue(d.market.hasRole(d.market.CONCESSION_ISSUER_ROLE(), address(0xC0FFEE)));
    }
}
