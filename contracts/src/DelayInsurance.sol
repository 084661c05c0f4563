// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title DelayInsurance
/// @notice Parametric delay cover sold as an insurance leg of a plan. An oracle
///         reports delays; a qualifying delay mints a voucher NFT ("KVCH") to the
///         policy holder, redeemable once at the voucher's operator before expiry.
contract DelayInsurance is ERC721, AccessControl {
    bytes32 public constant MARKET_ROLE = keccak256("MARKET_ROLE");
    bytes32 public constant ORACLE_ROLE = keccak256("ORACLE_ROLE");
    bytes32 public constant REDEEMER_ROLE = keccak256("REDEEMER_ROLE");

    struct Terms {
        uint32 thresholdMinutes;
        uint128 voucherValue;
        uint32 voucherOperatorId;
        uint64 voucherLifetime;
    }

    struct Policy {
        address holder;
        uint64 validFrom;
        uint64 validUntil;
    }

    struct Voucher {
        uint256 policyId;
        uint128 value;
        uint32 operatorId;
        uint64 expiry;
        bytes32 delayId;
    }

    Terms private _terms;
    uint256 private _nextVoucherId = 1;
    mapping(uint256 policyId => Policy) private _policies;
    mapping(uint256 voucherId => Voucher) private _vouchers;
    mapping(uint256 policyId => mapping(bytes32 delayId => bool)) private _compensated;

    event TermsSet(uint32 thresholdMinutes, uint128 voucherValue, uint32 voucherOperatorId, uint64 voucherLifetime);
    event PolicyOpened(uint256 indexed policyId, address indexed holder, uint64 validFrom, uint64 validUntil);
    event DelayReported(bytes32 indexed delayId, uint256 indexed policyId, uint32 delayMinutes);
    event VoucherIssued(
        uint256 indexed voucherId,
        uint256 indexed policyId,
        address indexed holder,
        uint128 value,
        uint32 operatorId,
        uint64 expiry,
        bytes32 delayId
    );
    event VoucherRedeemed(uint256 indexed voucherId, uint32 indexed operatorId, uint128 value);

    error InvalidTerms();
    error ZeroAddress();
    error InvalidWindow();
    error PolicyExists(uint256 policyId);
    error UnknownPolicy(uint256 policyId);
    error NotCovered(uint256 policyId);
    error BelowThreshold(uint32 delayMinutes, uint32 thresholdMinutes);
    error AlreadyCompensated(uint256 policyId, bytes32 delayId);
    error UnknownVoucher(uint256 voucherId);
    error WrongOperator(uint256 voucherId, uint32 operatorId);
    error VoucherExpired(uint256 voucherId);

    constructor(address admin, Terms memory terms_) ERC721("Kippu Voucher", "KVCH") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setTerms(terms_);
    }

    function setTerms(Terms calldata terms_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTerms(terms_);
    }

    function terms() external view returns (Terms memory) {
        return _terms;
    }

    function openPolicy(uint256 policyId, address holder, uint64 validFrom, uint64 validUntil)
        external
        onlyRole(MARKET_ROLE)
    {
        if (holder == address(0)) revert ZeroAddress();
        if (validUntil <= validFrom) revert InvalidWindow();
        if (_policies[policyId].holder != address(0)) revert PolicyExists(policyId);
        _policies[policyId] = Policy({holder: holder, validFrom: validFrom, validUntil: validUntil});
        emit PolicyOpened(policyId, holder, validFrom, validUntil);
    }

    function reportDelay(bytes32 delayId, uint256 policyId, uint32 delayMinutes)
        external
        onlyRole(ORACLE_ROLE)
        returns (uint256 voucherId)
    {
        Policy memory p = _policies[policyId];
        if (p.holder == address(0)) revert UnknownPolicy(policyId);
        if (block.timestamp < p.validFrom || block.timestamp >= p.validUntil) revert NotCovered(policyId);
        Terms memory t = _terms;
        if (delayMinutes < t.thresholdMinutes) revert BelowThreshold(delayMinutes, t.thresholdMinutes);
        if (_compensated[policyId][delayId]) revert AlreadyCompensated(policyId, delayId);
        _compensated[policyId][delayId] = true;

        voucherId = _nextVoucherId++;
        uint64 expiry = uint64(block.timestamp) + t.voucherLifetime;
        _vouchers[voucherId] = Voucher({
            policyId: policyId, value: t.voucherValue, operatorId: t.voucherOperatorId, expiry: expiry, delayId: delayId
        });
        emit DelayReported(delayId, policyId, delayMinutes);
        _mint(p.holder, voucherId);
        emit VoucherIssued(voucherId, policyId, p.holder, t.voucherValue, t.voucherOperatorId, expiry, delayId);
    }

    function redeem(uint256 voucherId, uint32 operatorId) external onlyRole(REDEEMER_ROLE) {
        if (_ownerOf(voucherId) == address(0)) revert UnknownVoucher(voucherId);
        Voucher memory v = _vouchers[voucherId];
        if (v.operatorId != operatorId) revert WrongOperator(voucherId, operatorId);
        if (block.timestamp >= v.expiry) revert VoucherExpired(voucherId);
        _burn(voucherId);
        emit VoucherRedeemed(voucherId, operatorId, v.value);
    }

    /// @notice Voucher data; kept after redemption (the NFT is burnt).
    function voucher(uint256 id) external view returns (Voucher memory) {
        Voucher memory v = _vouchers[id];
        if (v.expiry == 0) revert UnknownVoucher(id);
        return v;
    }

    function policy(uint256 id) external view returns (Policy memory) {
        Policy memory p = _policies[id];
        if (p.holder == address(0)) revert UnknownPolicy(id);
        return p;
    }

    /// @notice Whether `delayId` has already produced a voucher for `policyId`.
    function compensated(uint256 policyId, bytes32 delayId) external view returns (bool) {
        return _compensated[policyId][delayId];
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }

    function _setTerms(Terms memory t) private {
        if (t.voucherLifetime == 0) revert InvalidTerms();
        _terms = t;
        emit TermsSet(t.thresholdMinutes, t.voucherValue, t.voucherOperatorId, t.voucherLifetime);
    }
}
