// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @title IVoucherPayables
/// @notice What Clearing needs of the delay insurer (DelayInsurance) to pay redeemed
///         vouchers out of the insurer's premium claim at a period's settlement.
interface IVoucherPayables {
    /// @notice Voucher value booked as payable by the insurer to `operatorId`, not yet settled.
    function payableTo(uint32 operatorId) external view returns (uint256);

    /// @notice Sum of `payableTo` over all operators.
    function totalPayable() external view returns (uint256);

    /// @notice Record that `amount` of `operatorId`'s payable was paid (by Clearing, CLEARING_ROLE).
    function settlePayable(uint32 operatorId, uint256 amount) external;
}
