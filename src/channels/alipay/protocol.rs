//! Alipay's side of the conversation with no I/O: methods, business parameters, the
//! response fields we read, and the one table that classifies every answer.
//! Codes are matched exhaustively on enums; an unrecognised code is `Other`, which
//! classifies as unknown (query, then review) and never as a failure.

use crate::channels::ChannelOutcome;
use serde::{Deserialize, Serialize};

pub const REFUND: &str = "alipay.trade.refund";
pub const REFUND_QUERY: &str = "alipay.trade.fastpay.refund.query";
pub const TRANSFER: &str = "alipay.fund.trans.uni.transfer";
pub const TRANSFER_QUERY: &str = "alipay.fund.trans.common.query";

pub const PRODUCT_CODE: &str = "TRANS_ACCOUNT_NO_PWD";
pub const BIZ_SCENE: &str = "DIRECT_TRANSFER";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct RefundBiz {
    pub trade_no: String,
    /// Yuan with two decimals.
    pub refund_amount: String,
    pub out_request_no: String,
    pub refund_reason: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct RefundQueryBiz {
    pub trade_no: String,
    pub out_request_no: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct TransferBiz {
    pub out_biz_no: String,
    pub trans_amount: String,
    pub product_code: String,
    pub biz_scene: String,
    pub order_title: String,
    pub payee_info: PayeeInfo,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct PayeeInfo {
    pub identity: String,
    pub identity_type: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct TransferQueryBiz {
    pub out_biz_no: String,
    pub product_code: String,
    pub biz_scene: String,
}

/// The fields of any `<method>_response` object we read.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct GatewayResponse {
    pub code: String,
    #[serde(default)]
    pub msg: String,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
    pub trade_no: Option<String>,
    pub fund_change: Option<String>,
    pub refund_status: Option<String>,
    pub order_id: Option<String>,
    pub status: Option<String>,
}

/// Gateway `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Success,
    ServiceUnavailable,
    InsufficientPermission,
    MissingParameter,
    InvalidParameter,
    BusinessFailed,
    InsufficientAuthorisation,
    Other,
}

impl Code {
    pub fn parse(s: &str) -> Self {
        match s {
            "10000" => Self::Success,
            "20000" => Self::ServiceUnavailable,
            "20001" => Self::InsufficientPermission,
            "40001" => Self::MissingParameter,
            "40002" => Self::InvalidParameter,
            "40004" => Self::BusinessFailed,
            "40006" => Self::InsufficientAuthorisation,
            _ => Self::Other,
        }
    }
}

/// `sub_code` of a `40004`. Decisions are made on this, never on `sub_msg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubCode {
    AcqSystemError,
    SystemError,
    DiscordantRepeatRequest,
    PaymentInfoInconsistency,
    TradeNotExist,
    TradeHasFinished,
    TradeNotAllowRefund,
    RefundAmtNotEqualTotal,
    TradeBeenFrozen,
    PayeeNotExist,
    PayeeUserInfoError,
    /// `EXCEED_LIMIT_PERSONAL_SM_AMOUNT` (over the single-transfer limit to a personal
    /// account), `EXCEED_LIMIT_UNRN_DM_AMOUNT` (the payee is not real-name verified and
    /// over its daily receiving limit), `EXCEED_LIMIT_SM_MIN_AMOUNT` (below the smallest
    /// transfer): the payee's or the withdrawal's own limit. Definitive.
    PayeeLimit,
    /// Any other `EXCEED_LIMIT_*`: our contract's quotas (`_SM_AMOUNT` single, `_DM_*`
    /// daily, `_MM_*` monthly) and counts that reset the next day (`_DC_RECEIVED`).
    /// Ours to fix or wait out, never the user's fault (issue 14, CHANNELS.md).
    MerchantLimit,
    SellerBalanceNotEnough,
    PayerBalanceNotEnough,
    /// Our paying account cannot pay now: balance, status, product or permission
    /// (`alipay.fund.trans.uni.transfer`'s error table). Ours to fix, nothing moved.
    PayerUnable,
    /// Alipay refused the load (`RESOURCE_LIMIT_EXCEED`: too many concurrent requests)
    /// or its bank channel is down (`INST_PAY_UNABLE`): nothing moved, try again.
    TemporarilyUnable,
    OrderNotExist,
    Other,
}

impl SubCode {
    pub fn parse(s: &str) -> Self {
        match s {
            "ACQ.SYSTEM_ERROR" => Self::AcqSystemError,
            "SYSTEM_ERROR" => Self::SystemError,
            "ACQ.DISCORDANT_REPEAT_REQUEST" => Self::DiscordantRepeatRequest,
            "PAYMENT_INFO_INCONSISTENCY" => Self::PaymentInfoInconsistency,
            "ACQ.TRADE_NOT_EXIST" => Self::TradeNotExist,
            "ACQ.TRADE_HAS_FINISHED" => Self::TradeHasFinished,
            "ACQ.TRADE_NOT_ALLOW_REFUND" => Self::TradeNotAllowRefund,
            "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" => Self::RefundAmtNotEqualTotal,
            "ACQ.REASON_TRADE_BEEN_FREEZEN" => Self::TradeBeenFrozen,
            "PAYEE_NOT_EXIST" => Self::PayeeNotExist,
            "PAYEE_USER_INFO_ERROR" => Self::PayeeUserInfoError,
            "EXCEED_LIMIT_PERSONAL_SM_AMOUNT"
            | "EXCEED_LIMIT_UNRN_DM_AMOUNT"
            | "EXCEED_LIMIT_SM_MIN_AMOUNT" => Self::PayeeLimit,
            s if s.starts_with("EXCEED_LIMIT") => Self::MerchantLimit,
            "ACQ.SELLER_BALANCE_NOT_ENOUGH" => Self::SellerBalanceNotEnough,
            "PAYER_BALANCE_NOT_ENOUGH" => Self::PayerBalanceNotEnough,
            "BALANCE_IS_NOT_ENOUGH"
            | "PAYCARD_UNABLE_PAYMENT"
            | "PAYER_STATUS_ERROR"
            | "PAYER_NOT_EXIST"
            | "PRODUCT_NOT_SIGN"
            | "NO_ACCOUNT_PAYMENT_PERMISSION"
            | "INVALID_PAYER_ACCOUNT"
            | "MONEY_PAY_CLOSED"
            | "INVALID_PARAMETER" => Self::PayerUnable,
            "RESOURCE_LIMIT_EXCEED" | "INST_PAY_UNABLE" => Self::TemporarilyUnable,
            "ORDER_NOT_EXIST" => Self::OrderNotExist,
            _ => Self::Other,
        }
    }
}

/// Status of a transfer (`status` of uni.transfer and common.query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStatus {
    Success,
    Dealing,
    WaitPay,
    Fail,
    Closed,
    /// Bounced after apparent success: the money came back.
    Refund,
    Other,
}

impl TransferStatus {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("SUCCESS") => Self::Success,
            Some("DEALING") => Self::Dealing,
            Some("WAIT_PAY") => Self::WaitPay,
            Some("FAIL") => Self::Fail,
            Some("CLOSED") => Self::Closed,
            Some("REFUND") => Self::Refund,
            _ => Self::Other,
        }
    }
}

/// Which call an answer belongs to: the same code means different things per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Refund,
    RefundQuery,
    Transfer,
    TransferQuery,
}

fn failed(r: &GatewayResponse) -> ChannelOutcome {
    let code = r.sub_code.clone().unwrap_or_else(|| r.code.clone());
    let reason = r
        .sub_msg
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("Alipay refused the payout ({code})"));
    ChannelOutcome::Failed { code, reason }
}

fn unknown(r: &GatewayResponse, what: &str) -> ChannelOutcome {
    ChannelOutcome::Unknown {
        reason: format!(
            "Alipay {what}: code {} {}",
            r.code,
            r.sub_code.as_deref().unwrap_or("")
        )
        .trim_end()
        .to_owned(),
    }
}

/// The classification table: every Alipay answer to one of our calls, to one outcome.
pub fn classify(call: Call, r: &GatewayResponse) -> ChannelOutcome {
    match Code::parse(&r.code) {
        Code::Success => classify_success(call, r),
        // Service unavailable: the request may or may not have been carried out.
        Code::ServiceUnavailable => unknown(r, "service unavailable"),
        // Our own setup is wrong (keys, permissions, parameters): not the user's fault,
        // and the request was refused before anything happened.
        Code::InsufficientPermission
        | Code::MissingParameter
        | Code::InvalidParameter
        | Code::InsufficientAuthorisation => ChannelOutcome::RetryLater {
            reason: format!(
                "Alipay rejected our request (code {}): merchant setup",
                r.code
            ),
        },
        Code::BusinessFailed => classify_business(call, r),
        Code::Other => unknown(r, "unrecognised gateway code"),
    }
}

fn classify_success(call: Call, r: &GatewayResponse) -> ChannelOutcome {
    let reference = || {
        r.order_id
            .clone()
            .or_else(|| r.trade_no.clone())
            .unwrap_or_default()
    };
    match call {
        // Success only with fund_change=Y; otherwise query.
        Call::Refund => match r.fund_change.as_deref() {
            Some("Y") => ChannelOutcome::Succeeded {
                reference: reference(),
            },
            _ => unknown(r, "refund accepted without fund change"),
        },
        // Code 10000 only says the query ran. REFUND_SUCCESS is success; no status means
        // the refund was not carried out, so resending with the same key is safe.
        Call::RefundQuery => match r.refund_status.as_deref() {
            Some("REFUND_SUCCESS") => ChannelOutcome::Succeeded {
                reference: reference(),
            },
            None | Some("") => ChannelOutcome::NotFound,
            Some(_) => unknown(r, "unrecognised refund_status"),
        },
        Call::Transfer | Call::TransferQuery => match TransferStatus::parse(r.status.as_deref()) {
            TransferStatus::Success => ChannelOutcome::Succeeded {
                reference: reference(),
            },
            TransferStatus::Dealing | TransferStatus::WaitPay => ChannelOutcome::Pending,
            TransferStatus::Fail | TransferStatus::Closed | TransferStatus::Refund => {
                ChannelOutcome::Failed {
                    code: format!("TRANSFER_{}", r.status.as_deref().unwrap_or_default()),
                    reason: "Alipay reports the transfer did not reach the payee".into(),
                }
            }
            TransferStatus::Other => unknown(r, "unrecognised transfer status"),
        },
    }
}

fn classify_business(call: Call, r: &GatewayResponse) -> ChannelOutcome {
    match SubCode::parse(r.sub_code.as_deref().unwrap_or_default()) {
        SubCode::AcqSystemError | SubCode::SystemError => unknown(r, "system error"),
        // Same key, other parameters: a bug on our side. Never a failure.
        SubCode::DiscordantRepeatRequest | SubCode::PaymentInfoInconsistency => {
            ChannelOutcome::Review {
                reason: format!(
                    "Alipay saw our idempotency key with other parameters ({})",
                    r.sub_code.as_deref().unwrap_or_default()
                ),
            }
        }
        SubCode::TradeNotExist
        | SubCode::TradeHasFinished
        | SubCode::TradeNotAllowRefund
        | SubCode::RefundAmtNotEqualTotal
        | SubCode::TradeBeenFrozen
        | SubCode::PayeeNotExist
        | SubCode::PayeeUserInfoError
        | SubCode::PayeeLimit => failed(r),
        // Merchant-side: our quota, balance, account or Alipay's load. The request was
        // refused, nothing moved, and it is not the user's fault: retry later with the
        // same key, then review. Funds stay frozen (issue 14, CHANNELS.md).
        SubCode::MerchantLimit => ChannelOutcome::RetryLater {
            reason: format!(
                "our Alipay quota is used up ({})",
                r.sub_code.as_deref().unwrap_or_default()
            ),
        },
        SubCode::SellerBalanceNotEnough | SubCode::PayerBalanceNotEnough => {
            ChannelOutcome::RetryLater {
                reason: "our Alipay merchant balance is too low".into(),
            }
        }
        SubCode::PayerUnable => ChannelOutcome::RetryLater {
            reason: format!(
                "our Alipay paying account cannot pay ({}): merchant setup",
                r.sub_code.as_deref().unwrap_or_default()
            ),
        },
        SubCode::TemporarilyUnable => ChannelOutcome::RetryLater {
            reason: format!(
                "Alipay is not taking transfers now ({})",
                r.sub_code.as_deref().unwrap_or_default()
            ),
        },
        SubCode::OrderNotExist => match call {
            Call::TransferQuery | Call::RefundQuery => ChannelOutcome::NotFound,
            Call::Transfer | Call::Refund => unknown(r, "ORDER_NOT_EXIST on a payment"),
        },
        SubCode::Other => unknown(r, "unrecognised sub_code"),
    }
}

#[cfg(test)]
mod tests;
