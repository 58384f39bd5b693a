"""Email channel: SMTP in (aiosmtpd), SMTP out (aiosmtplib), RFC 5322 threading."""
