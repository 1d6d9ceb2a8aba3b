-- A resident deleted from the roster (residents) is signed out on every phone, as one
-- recorded as moved out is (security probe 4 / 5: a deleted resident kept their portal
-- session, and with it their door rights' remote open). Every way of deleting (office, API,
-- CLI, sync) goes through this table, so the database does it; their unused login codes go too.
CREATE TRIGGER IF NOT EXISTS portal_sign_out_deleted_resident
AFTER DELETE ON residents
BEGIN
    UPDATE portal_sessions SET revoked_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
        WHERE resident_id = OLD.id AND revoked_at IS NULL;
    UPDATE portal_codes SET used_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
        WHERE resident_id = OLD.id AND used_at IS NULL;
END;
