-- Event data carries times in the same form as the API: UTC ISO 8601 with a Z suffix.

CREATE FUNCTION utc_iso(moment timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
