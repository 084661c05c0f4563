// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title FareToken
/// @notice Kippu stored-value token ("FARE", 2 decimals: 1 FARE unit = 1 cent).
///         Minted 1:1 against settled card payments; every mint is keyed by the
///         card payment id so a payment can never be minted twice.
contract FareToken is ERC20, ERC20Permit, AccessControl {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice paymentRef => already minted
    mapping(bytes32 paymentRef => bool minted) private _paymentMinted;

    event FareMinted(address indexed to, uint256 amount, bytes32 indexed paymentRef);

    error PaymentAlreadyMinted(bytes32 paymentRef);
    error ZeroAmount();

    constructor(address admin) ERC20("Kippu Fare", "FARE") ERC20Permit("Kippu Fare") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    function decimals() public pure override returns (uint8) {
        return 2;
    }

    /// @notice Mint `amount` FARE to `to` for the card payment `paymentRef`.
    function mint(address to, uint256 amount, bytes32 paymentRef) external onlyRole(MINTER_ROLE) {
        if (amount == 0) revert ZeroAmount();
        if (_paymentMinted[paymentRef]) revert PaymentAlreadyMinted(paymentRef);
        _paymentMinted[paymentRef] = true;
        _mint(to, amount);
        emit FareMinted(to, amount, paymentRef);
    }

    function paymentMinted(bytes32 paymentRef) external view returns (bool) {
        return _paymentMinted[paymentRef];
    }
}
