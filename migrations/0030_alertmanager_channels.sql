-- Alertmanager as a channel: alerts are posted to its v2 API (POST /api/v2/alerts). The kind column's CHECK allows
-- webhook and email only, and rebuilding the table would cascade into the delivery log, so an Alertmanager channel
-- is stored as kind 'webhook' with this format; the channel's secret is its bearer token.
ALTER TABLE notification_channels ADD COLUMN webhook_format TEXT NOT NULL DEFAULT 'steward' CHECK (webhook_format IN ('steward', 'alertmanager'));
