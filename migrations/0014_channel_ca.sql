-- A CA certificate (PEM file on the panel host) that an email channel trusts for its SMTP server, for mail servers
-- with certificates from a private CA.
ALTER TABLE notification_channels ADD COLUMN smtp_ca_file TEXT NOT NULL DEFAULT '';
