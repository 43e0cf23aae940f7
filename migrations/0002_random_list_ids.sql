-- List ids become random, so that a list's link cannot be guessed: a list is open to whoever
-- has its link (there are no accounts), and with sequential ids anyone could walk them.
--
-- A new list's id is 63 random bits: the first 8 bytes of a SHA-256 of a random UUID
-- (gen_random_uuid() draws 122 bits from the server's strong random source; hashing spreads
-- them over all 64 bits, which a UUID's fixed version and variant bits would not), with the
-- sign bit cleared; 0 becomes 1, so ids are always positive. Existing lists keep their ids.
-- A collision (about one in 10^9 after 100,000 lists) fails the insert with a unique
-- violation; the app retries.

ALTER TABLE lists
    ALTER COLUMN id SET DEFAULT greatest(
        ('x' || encode(substr(sha256(uuid_send(gen_random_uuid())), 1, 8), 'hex'))::bit(64)::bigint
            & 9223372036854775807,
        1
    );

-- The sequence of the old bigserial default is no longer used.
DROP SEQUENCE lists_id_seq;
