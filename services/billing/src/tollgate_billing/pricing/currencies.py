"""ISO 4217 currencies and their minor units (the digits after the decimal point).

The active codes of the ISO 4217 list (amendment 178); funds and precious-metal codes without a
minor unit (XAU, XDR, ...) are left out because nothing is sold in them.
"""

# Everything not listed under another count has two minor digits.
_ZERO_DIGITS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DIGITS = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DIGITS = "CLF UYW"
_TWO_DIGITS = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP "
    "GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT "
    "LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN "
    "NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE "
    "SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES "
    "WST XCD XCG YER ZAR ZMW ZWG"
)

MINOR_DIGITS: dict[str, int] = {
    **dict.fromkeys(_TWO_DIGITS.split(), 2),
    **dict.fromkeys(_ZERO_DIGITS.split(), 0),
    **dict.fromkeys(_THREE_DIGITS.split(), 3),
    **dict.fromkeys(_FOUR_DIGITS.split(), 4),
}


class UnknownCurrencyError(ValueError):
    pass


def minor_digits(currency: str) -> int:
    """The minor unit digits of an ISO 4217 code (upper case); UnknownCurrencyError otherwise."""
    try:
        return MINOR_DIGITS[currency]
    except KeyError:
        raise UnknownCurrencyError(f"{currency!r} is not an ISO 4217 currency code") from None
