//! UnionPay's answer codes (`respCode`, and `origRespCode` in a query answer) with the
//! texts UnionPay gives them: the vocabulary the classification tables in `protocol.rs`
//! are written in. A code we have not named parses as `Other`.

/// UnionPay's answer codes (`respCode`, and `origRespCode` in a query answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespCode {
    /// 00 成功.
    Success,
    /// A6 有缺陷的成功 ("success with defects"). UnionPay's SDK demos and integration
    /// guides handle it as `00`: accepted, to be confirmed by a query (CHANNELS.md).
    SuccessWithDefects,
    /// 01 交易失败.
    TransactionFailed,
    /// 02 系统未开放或暂时关闭.
    SystemClosed,
    /// 03 交易通讯超时: query.
    CommunicationTimeout,
    /// 04 交易状态未明: query.
    StatusUnknown,
    /// 05 交易已受理，请稍后查询交易结果: query.
    AcceptedQueryLater,
    /// 06 系统繁忙.
    SystemBusy,
    /// 10 报文格式错误.
    FormatError,
    /// 11 验证签名失败.
    SignatureInvalid,
    /// 12 重复交易: our orderId seen with other parameters.
    DuplicateTransaction,
    /// 13 报文交易要素缺失.
    MissingElements,
    /// 30 交易未通过.
    NotApproved,
    /// 31 商户状态不正确.
    MerchantStatus,
    /// 32 无此交易权限.
    NoTransactionPermission,
    /// 33 交易金额超限.
    AmountOverLimit,
    /// 34 查无此交易.
    NoSuchTransaction,
    /// 35 原交易不存在或状态不正确.
    OriginalNotFound,
    /// 36 与原交易信息不符.
    OriginalMismatch,
    /// 37 已超过最大查询次数或操作过于频繁.
    TooFrequent,
    /// 38 银联风险受限.
    RiskRestricted,
    /// 39 交易不在受理时间范围内.
    OutsideHours,
    /// 43 无此业务权限.
    NoBusinessPermission,
    /// 60 交易失败，详情请咨询您的发卡行.
    IssuerDeclined,
    /// 61 输入的卡号无效.
    InvalidCard,
    /// 62 交易失败，发卡银行不支持该商户.
    IssuerUnsupported,
    /// 63 卡状态不正确.
    CardStatus,
    Other,
}

impl RespCode {
    pub fn parse(s: &str) -> Self {
        match s {
            "00" => Self::Success,
            "A6" => Self::SuccessWithDefects,
            "01" => Self::TransactionFailed,
            "02" => Self::SystemClosed,
            "03" => Self::CommunicationTimeout,
            "04" => Self::StatusUnknown,
            "05" => Self::AcceptedQueryLater,
            "06" => Self::SystemBusy,
            "10" => Self::FormatError,
            "11" => Self::SignatureInvalid,
            "12" => Self::DuplicateTransaction,
            "13" => Self::MissingElements,
            "30" => Self::NotApproved,
            "31" => Self::MerchantStatus,
            "32" => Self::NoTransactionPermission,
            "33" => Self::AmountOverLimit,
            "34" => Self::NoSuchTransaction,
            "35" => Self::OriginalNotFound,
            "36" => Self::OriginalMismatch,
            "37" => Self::TooFrequent,
            "38" => Self::RiskRestricted,
            "39" => Self::OutsideHours,
            "43" => Self::NoBusinessPermission,
            "60" => Self::IssuerDeclined,
            "61" => Self::InvalidCard,
            "62" => Self::IssuerUnsupported,
            "63" => Self::CardStatus,
            _ => Self::Other,
        }
    }
}
