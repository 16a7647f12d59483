"""The WebSocket hub: live notifications for the web admin and WeChat mini-program clients.

Notifications are stored with a per-recipient sequence number and pushed with
resume-from-sequence, bounded per-connection queues and fan-out across processes.
"""
