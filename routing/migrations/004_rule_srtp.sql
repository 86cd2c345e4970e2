-- routing v4: per-rule SDES-SRTP toward the destination. '' follows media.srtp
-- and the destination (sips:/TLS targets); 'on' requires it; 'off' offers plain RTP.
ALTER TABLE rules ADD COLUMN srtp TEXT NOT NULL DEFAULT ''
	CHECK (srtp IN ('', 'on', 'off'));
