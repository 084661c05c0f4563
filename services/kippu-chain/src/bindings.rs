//! Contract bindings generated from `contracts/abi/*.json`.
#![allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    FareToken,
    "../../contracts/abi/FareToken.json"
);
sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    Ticket,
    "../../contracts/abi/Ticket.json"
);
sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    PlanMarket,
    "../../contracts/abi/PlanMarket.json"
);
sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    DelayInsurance,
    "../../contracts/abi/DelayInsurance.json"
);
sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    Clearing,
    "../../contracts/abi/Clearing.json"
);

sol! {
    /// EIP-2612 permit, signed by the traveler's key so a relayer pays the gas.
    #[derive(Debug)]
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }
}
