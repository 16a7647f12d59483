"""Payments: the provider interface (`provider.py`), the `dev` and `wechatpay` providers, the
notify pipeline that records each provider callback once and hands it to the order side's sink
(`notices.py`), and their HTTP endpoints (`http.py`). See docs/payments.md."""
