// Hardhat's node (EDR), the second EVM implementation Kippu's end-to-end trip and the
// chain-write outbox's fault tests run on (services/kippu-chain/src/hardhat.rs starts it with
// `hardhat node --hostname 127.0.0.1 --port N` in this directory).
//
// Configured as a consortium chain is (Besu with min-gas-price=0): blocks on a timer, never
// on each transaction, and gas that costs nothing.
//
//   KIPPU_HARDHAT_BLOCK_TIME_MS  interval between blocks (default 1000; 0 = mined only by
//                                evm_mine)
//   KIPPU_HARDHAT_CHAIN_ID       chain id (default 31337, as anvil's and Kippu's tests)

const blockTime = Number(process.env.KIPPU_HARDHAT_BLOCK_TIME_MS ?? 1000);
const chainId = Number(process.env.KIPPU_HARDHAT_CHAIN_ID ?? 31337);

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  // No sources here: `hardhat node` compiles the project first, and there is nothing to
  // compile (so no solc download either).
  paths: { sources: "./no-sources" },
  networks: {
    hardhat: {
      chainId,
      // The contracts are built for cancun (contracts/foundry.toml); prague adds nothing
      // they use, and stays below osaka's per-transaction gas cap (EIP-7825).
      hardfork: "prague",
      mining: {
        auto: false,
        interval: blockTime,
        mempool: { order: "fifo" },
      },
      // Free gas: a base fee of 0 (and blocks far from full, so it stays 0) and no
      // minimum price, so zero-priced transactions are accepted and mined.
      initialBaseFeePerGas: 0,
      gasPrice: 0,
      blockGasLimit: 1_000_000_000,
      // anvil's and Hardhat's well-known dev mnemonic: the first account is the key
      // Kippu's demo and tests deploy with (kippu_chain::anvil::DEV_ADMIN_KEY).
      accounts: {
        mnemonic: "test test test test test test test test test test test junk",
        count: 10,
        accountsBalance: "10000000000000000000000",
      },
      allowUnlimitedContractSize: true,
      // Reverted calls are answers (Kippu decodes the contracts' errors), not node errors.
      throwOnTransactionFailures: false,
      throwOnCallFailures: true,
      loggingEnabled: false,
    },
  },
};
