// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title Ticket
/// @notice One NFT per leg of a purchased mobility plan. Validators record
///         rides against it while it is inside its validity window.
contract Ticket is ERC721, AccessControl {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    bytes32 public constant VALIDATOR_ROLE = keccak256("VALIDATOR_ROLE");
    uint32 public constant UNLIMITED_RIDES = type(uint32).max;

    struct TicketData {
        uint32 operatorId;
        uint32 productId;
        uint64 planId;
        uint64 validFrom;
        uint64 validUntil;
        uint32 ridesLeft;
    }

    uint256 private _nextTicketId = 1;
    mapping(uint256 tokenId => TicketData) private _tickets;

    event TicketIssued(
        uint256 indexed tokenId,
        address indexed holder,
        uint64 indexed planId,
        uint32 operatorId,
        uint32 productId,
        uint64 validFrom,
        uint64 validUntil,
        uint32 rides
    );
    event RideRecorded(uint256 indexed tokenId, uint32 ridesLeft);

    error InvalidWindow();
    error UnknownTicket(uint256 tokenId);
    error NotYetValid(uint256 tokenId);
    error TicketExpired(uint256 tokenId);
    error NoRidesLeft(uint256 tokenId);

    constructor(address admin) ERC721("Kippu Ticket", "KTIX") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    function mint(
        address to,
        uint64 planId,
        uint32 operatorId,
        uint32 productId,
        uint64 validFrom,
        uint64 validUntil,
        uint32 rides
    ) external onlyRole(MINTER_ROLE) returns (uint256 tokenId) {
        if (validUntil <= validFrom) revert InvalidWindow();
        tokenId = _nextTicketId++;
        _tickets[tokenId] = TicketData({
            operatorId: operatorId,
            productId: productId,
            planId: planId,
            validFrom: validFrom,
            validUntil: validUntil,
            ridesLeft: rides
        });
        _mint(to, tokenId);
        emit TicketIssued(tokenId, to, planId, operatorId, productId, validFrom, validUntil, rides);
    }

    /// @notice Record one ride. Valid in [validFrom, validUntil).
    function recordRide(uint256 tokenId) external onlyRole(VALIDATOR_ROLE) {
        TicketData storage t = _tickets[tokenId];
        if (t.validUntil == 0) revert UnknownTicket(tokenId);
        if (block.timestamp < t.validFrom) revert NotYetValid(tokenId);
        if (block.timestamp >= t.validUntil) revert TicketExpired(tokenId);
        uint32 left = t.ridesLeft;
        if (left != UNLIMITED_RIDES) {
            if (left == 0) revert NoRidesLeft(tokenId);
            unchecked {
                left -= 1;
            }
            t.ridesLeft = left;
        }
        emit RideRecorded(tokenId, left);
    }

    function ticketData(uint256 tokenId) external view returns (TicketData memory) {
        TicketData memory t = _tickets[tokenId];
        if (t.validUntil == 0) revert UnknownTicket(tokenId);
        return t;
    }

    function nextTicketId() external view returns (uint256) {
        return _nextTicketId;
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }
}
