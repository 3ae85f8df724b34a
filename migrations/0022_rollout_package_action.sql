-- What a package rollout does with the packages it names: upgrade them (as before), install them, or remove them.
-- A fleet-wide install or removal goes through a rollout so it gets a plan, approvals and waves.
ALTER TABLE rollouts ADD COLUMN package_action TEXT NOT NULL DEFAULT 'upgrade'
    CHECK (package_action IN ('upgrade', 'install', 'remove'));
