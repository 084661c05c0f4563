// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title Ticket
/// @notice One NFT per leg of a purchased mobility plan. Validators record
///         rides against it in batches (`recordRides`), each judged at the time of its tap.
/// @dev    All per-ticket state lives in ONE storage slot (see `TicketData`).
///         Validity kinds:
///         - FIXED   : valid in [validFrom, validUntil), `ridesLeft` rides (or unlimited);
///         - ROLLING : [validFrom, validUntil) is the activation window; the first
///                     recorded ride re-sets the window to [tap time, tap time + rollingDays days);
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
    /// @notice Most rides one `recordRides` call takes (about 2.1M gas with every ride accepted).
    uint256 public constant MAX_RIDES = 256;

    /// @notice `RideRefused` reasons: the ticket does not exist or was burnt (refunded) ...
    uint8 public constant RIDE_UNKNOWN = 1;
    /// @notice ... the tap came before the ticket's validFrom ...
    uint8 public constant RIDE_NOT_YET_VALID = 2;
    /// @notice ... the tap came at or after its validUntil (a ROLLING ticket's activation deadline
    ///         before its first ride) ...
    uint8 public constant RIDE_EXPIRED = 3;
    /// @notice ... no ride was left ...
    uint8 public constant RIDE_NO_RIDES_LEFT = 4;
    /// @notice ... or the tap's time is after the block's.
    uint8 public constant RIDE_IN_FUTURE = 5;

    /// @notice One tap to record: the ticket and the unix time of the tap (as the validator judged it;
    ///         not `at`, which solc reserves as a future keyword).
    struct Ride {
        uint256 tokenId;
        uint64 time;
    }

    /// @dev exactly 256 bits = one storage slot; `_ride` reads and writes it by bit offset, so a
    ///      change of field order or width must be mirrored there
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
    mapping(bytes32 batchKey => bool) private _ridesRecorded;

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
    event RideRefused(uint256 indexed tokenId, bytes32 indexed batchKey, uint8 reason);
    /// @dev one per `recordRides` call, after its rides' events
    event RidesRecorded(bytes32 indexed batchKey, uint32 recorded, uint32 refused);

    error InvalidWindow();
    error InvalidTicket();
    error UnknownTicket(uint256 tokenId);
    error NonTransferable(uint256 tokenId);
    error InvalidBatch();
    error RidesAlreadyRecorded(bytes32 batchKey);

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

    /// @notice Record a batch of rides (taps a gate let through), judged at the time of each tap.
    /// @dev    Idempotent on `batchKey` (Kippu uses the Merkle root of the tap batch): a second call
    ///         with the same key reverts `RidesAlreadyRecorded`, so a re-sent or concurrent batch is
    ///         never counted twice. One bad item never fails the batch: it is skipped with
    ///         `RideRefused(tokenId, batchKey, reason)` (reasons: `RIDE_*`). A ride is accepted when the
    ///         ticket exists and is unburnt, `time` is not in the future of this block, `time` lies in
    ///         the ticket's window [validFrom, validUntil) and a ride is left; a ROLLING ticket's first
    ///         ride re-sets its window to [time, time + rollingDays days) (`TicketActivated`). Items are
    ///         judged in order (send them sorted by `time`), each with one storage read and at most one
    ///         write.
    /// @return recorded the number of rides accepted
    function recordRides(bytes32 batchKey, Ride[] calldata rides)
        external
        onlyRole(VALIDATOR_ROLE)
        returns (uint32 recorded)
    {
        uint256 n = rides.length;
        if (n == 0 || n > MAX_RIDES || batchKey == bytes32(0)) revert InvalidBatch();
        if (_ridesRecorded[batchKey]) revert RidesAlreadyRecorded(batchKey);
        _ridesRecorded[batchKey] = true;
        for (uint256 i; i < n; ++i) {
            uint256 tokenId = rides[i].tokenId;
            uint8 reason = _ride(tokenId, rides[i].time);
            if (reason == 0) {
                unchecked {
                    ++recorded;
                }
            } else {
                emit RideRefused(tokenId, batchKey, reason);
            }
        }
        emit RidesRecorded(batchKey, recorded, uint32(n) - recorded);
    }

    /// @notice Whether the ride batch `batchKey` was recorded (see `recordRides`).
    function ridesRecorded(bytes32 batchKey) external view returns (bool) {
        return _ridesRecorded[batchKey];
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

    /// @dev one ride of `recordRides`: 0 when recorded, else the `RIDE_*` reason it is refused for.
    ///      Works on the ticket's one storage word directly (one SLOAD, at most one SSTORE; copying
    ///      the struct through memory costs two more SLOADs per ride). Bit offsets of `TicketData`:
    ///      validFrom 104, validUntil 144, ridesLeft 184, validity 216, flags 224, rollingDays 232.
    function _ride(uint256 tokenId, uint64 time) private returns (uint8) {
        uint256 slot;
        uint256 w;
        assembly ("memory-safe") {
            mstore(0, tokenId)
            mstore(0x20, _tickets.slot)
            slot := keccak256(0, 0x40)
            w := sload(slot)
        }
        uint256 validUntil = uint40(w >> 144);
        uint8 flags = uint8(w >> 224);
        if (validUntil == 0 || flags & FLAG_BURNED != 0) return RIDE_UNKNOWN;
        // a tap cannot come from the future; this also keeps `time` within uint40
        if (time > block.timestamp) return RIDE_IN_FUTURE;
        if (time < uint40(w >> 104)) return RIDE_NOT_YET_VALID;
        if (time >= validUntil) return RIDE_EXPIRED;
        uint32 left = uint32(w >> 184);
        if (left != UNLIMITED_RIDES) {
            if (left == 0) return RIDE_NO_RIDES_LEFT;
            unchecked {
                left -= 1;
            }
            w = (w & ~(uint256(type(uint32).max) << 184)) | (uint256(left) << 184);
        }
        if (uint8(w >> 216) == ROLLING && flags & FLAG_USED == 0) {
            // validity starts at the tap (an offline gate may forward it later), not at this block;
            // at most 65535 days after a past `time`, `until` fits its 40 bits
            uint256 until = time + uint256(uint16(w >> 232)) * 1 days;
            w = (w & ~(uint256(type(uint80).max) << 104)) | (uint256(time) << 104) | (until << 144);
            emit TicketActivated(tokenId, time, uint64(until));
        }
        w |= uint256(FLAG_USED) << 224;
        assembly ("memory-safe") {
            sstore(slot, w)
        }
        emit RideRecorded(tokenId, left);
        return 0;
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
