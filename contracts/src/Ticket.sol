// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title Ticket
/// @notice One NFT per leg of a purchased mobility plan. Validators record
///         rides against it while it is inside its validity window.
/// @dev    All per-ticket state lives in ONE storage slot (see `TicketData`).
///         Validity kinds:
///         - FIXED   : valid in [validFrom, validUntil), `ridesLeft` rides (or unlimited);
///         - ROLLING : [validFrom, validUntil) is the activation window; the first
///                     recorded ride re-sets the window to [now, now + rollingDays days);
///         - RIDES   : N rides inside a (long) window [validFrom, validUntil).
///         Tickets without the TRANSFERABLE flag (e.g. concession tickets) can only be
///         minted and burnt, never transferred.
contract Ticket is ERC721, AccessControl {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    bytes32 public constant VALIDATOR_ROLE = keccak256("VALIDATOR_ROLE");
    uint32 public constant UNLIMITED_RIDES = type(uint32).max;

    uint8 public constant FIXED = 0;
    uint8 public constant ROLLING = 1;
    uint8 public constant RIDES = 2;

    uint8 public constant FLAG_TRANSFERABLE = 1;
    uint8 public constant FLAG_USED = 2;
    uint8 public constant FLAG_INSURED = 4;
    uint8 public constant FLAG_CONCESSION = 8;
    uint8 public constant FLAG_BURNED = 16;
    uint256 public constant MAX_BATCH = 256;

    /// @dev exactly 256 bits = one storage slot
    struct TicketData {
        uint32 operatorId;
        uint32 productId;
        uint40 planId;
        uint40 validFrom;
        uint40 validUntil;
        uint32 ridesLeft;
        uint8 validity;
        uint8 flags;
        uint16 rollingDays;
        uint8 legIndex;
    }

    uint256 private _nextTicketId = 1;
    mapping(uint256 tokenId => TicketData) private _tickets;
    /// @dev explicit owners; a leg minted by `mintBatch` without an entry is owned by
    ///      the owner of its batch head (tokenId - legIndex) until it is transferred
    mapping(uint256 tokenId => address) private _owners;
    mapping(address owner => uint256) private _balances;

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
    event TicketActivated(uint256 indexed tokenId, uint64 validFrom, uint64 validUntil);

    error InvalidWindow();
    error InvalidTicket();
    error UnknownTicket(uint256 tokenId);
    error NotYetValid(uint256 tokenId);
    error TicketExpired(uint256 tokenId);
    error NoRidesLeft(uint256 tokenId);
    error NonTransferable(uint256 tokenId);
    error InvalidBatch();

    constructor(address admin) ERC721("Kippu Ticket", "KTIX") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Mint one FIXED, transferable ticket (kept for direct issuance and tests).
    function mint(
        address to,
        uint64 planId,
        uint32 operatorId,
        uint32 productId,
        uint64 validFrom,
        uint64 validUntil,
        uint32 rides
    ) external onlyRole(MINTER_ROLE) returns (uint256 tokenId) {
        tokenId = _nextTicketId++;
        _mint(to, tokenId); // Transfer first, then TicketIssued (as for batches)
        _issue(
            to,
            tokenId,
            TicketData({
                operatorId: operatorId,
                productId: productId,
                planId: uint40(planId),
                validFrom: uint40(validFrom),
                validUntil: uint40(validUntil),
                ridesLeft: rides,
                validity: FIXED,
                flags: FLAG_TRANSFERABLE,
                rollingDays: 0,
                legIndex: 0
            })
        );
        if (validUntil > type(uint40).max || planId > type(uint40).max) revert InvalidWindow();
    }

    /// @notice Mint all legs of a plan in one call; ids are consecutive from `firstId`.
    ///         Only the first leg's owner is stored; the others inherit it (lazy ownership).
    function mintBatch(address to, TicketData[] calldata legs)
        external
        onlyRole(MINTER_ROLE)
        returns (uint256 firstId)
    {
        if (to == address(0)) revert ERC721InvalidReceiver(address(0));
        uint256 n = legs.length;
        if (n == 0 || n > MAX_BATCH) revert InvalidBatch();
        firstId = _nextTicketId;
        for (uint256 i; i < n; ++i) {
            TicketData memory t = legs[i];
            t.legIndex = uint8(i);
            uint256 id = firstId + i;
            emit Transfer(address(0), to, id);
            _issue(to, id, t);
        }
        _owners[firstId] = to;
        unchecked {
            _balances[to] += n;
        }
        _nextTicketId = firstId + n;
    }

    /// @notice Burn a ticket (refunds); its data is deleted so it can never ride again.
    function burn(uint256 tokenId) external onlyRole(MINTER_ROLE) {
        _burn(tokenId);
        _tickets[tokenId].flags |= FLAG_BURNED;
    }

    /// @notice Record one ride. Valid in [validFrom, validUntil); a ROLLING ticket
    ///         starts its validity at its first ride.
    function recordRide(uint256 tokenId) external onlyRole(VALIDATOR_ROLE) {
        TicketData memory t = _tickets[tokenId];
        if (t.validUntil == 0 || t.flags & FLAG_BURNED != 0) revert UnknownTicket(tokenId);
        if (block.timestamp < t.validFrom) revert NotYetValid(tokenId);
        if (block.timestamp >= t.validUntil) revert TicketExpired(tokenId);
        if (t.validity == ROLLING && t.flags & FLAG_USED == 0) {
            t.validFrom = uint40(block.timestamp);
            t.validUntil = uint40(block.timestamp + uint256(t.rollingDays) * 1 days);
            emit TicketActivated(tokenId, t.validFrom, t.validUntil);
        }
        uint32 left = t.ridesLeft;
        if (left != UNLIMITED_RIDES) {
            if (left == 0) revert NoRidesLeft(tokenId);
            unchecked {
                left -= 1;
            }
            t.ridesLeft = left;
        }
        t.flags |= FLAG_USED;
        _tickets[tokenId] = t;
        emit RideRecorded(tokenId, left);
    }

    function ticketData(uint256 tokenId) external view returns (TicketData memory) {
        TicketData memory t = _tickets[tokenId];
        if (t.validUntil == 0 || t.flags & FLAG_BURNED != 0) revert UnknownTicket(tokenId);
        return t;
    }

    function nextTicketId() external view returns (uint256) {
        return _nextTicketId;
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }

    function balanceOf(address owner) public view override returns (uint256) {
        if (owner == address(0)) revert ERC721InvalidOwner(address(0));
        return _balances[owner];
    }

    /// @dev does not write ownership; callers do
    function _issue(address to, uint256 tokenId, TicketData memory t) private {
        if (t.validUntil <= t.validFrom) revert InvalidWindow();
        if (t.validity > RIDES || (t.validity == ROLLING && t.rollingDays == 0)) revert InvalidTicket();
        _tickets[tokenId] = t;
        emit TicketIssued(tokenId, to, t.planId, t.operatorId, t.productId, t.validFrom, t.validUntil, t.ridesLeft);
    }

    function _ownerOf(uint256 tokenId) internal view override returns (address owner) {
        TicketData storage t = _tickets[tokenId];
        uint8 flags = t.flags;
        if (t.validUntil == 0 || flags & FLAG_BURNED != 0) return address(0);
        owner = _owners[tokenId];
        if (owner == address(0)) owner = _owners[tokenId - t.legIndex];
    }

    /// @dev Replaces OpenZeppelin's bookkeeping (own `_owners`/`_balances` for lazy batch
    ///      ownership) and blocks transfers (not mint/burn) of non-transferable tickets.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = _ownerOf(tokenId);
        if (auth != address(0)) _checkAuthorized(from, auth, tokenId);
        if (from != address(0)) {
            TicketData storage t = _tickets[tokenId];
            if (to != address(0) && t.flags & FLAG_TRANSFERABLE == 0) revert NonTransferable(tokenId);
            _approve(address(0), tokenId, address(0), false);
            unchecked {
                _balances[from] -= 1;
            }
            // a batch head leaving its owner: pin the owner of the legs that still inherit it
            if (t.legIndex == 0) _pinBatch(tokenId, from);
        }
        if (to != address(0)) {
            unchecked {
                _balances[to] += 1;
            }
        }
        _owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }

    function _pinBatch(uint256 head, address owner) private {
        for (uint256 j = 1; j < MAX_BATCH; ++j) {
            TicketData storage t = _tickets[head + j];
            if (t.legIndex != j || t.validUntil == 0) return;
            if (t.flags & FLAG_BURNED == 0 && _owners[head + j] == address(0)) _owners[head + j] = owner;
        }
    }
}
