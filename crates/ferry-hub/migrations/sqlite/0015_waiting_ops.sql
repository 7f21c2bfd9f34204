-- A helpdesk task's `when`: the moment on the device an operation waits for (JSON `WaitFor`
-- without `within_secs`, which is computed when the operation is handed out).
ALTER TABLE ops ADD COLUMN wait_for TEXT;
