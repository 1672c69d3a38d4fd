// The charter's defaults and the pledge hash (port of cli/member/charter.py): a forum
// created in the browser carries the same charter a CLI-created one does, and an
// acceptance signs the same pledge bytes. Fractions are text: msgpack has no floats.

import { ascii, concatBytes, encode } from "./codec.js";
import { sha256 } from "./keys.js";

export const DEFAULT_CHARTER = Object.freeze({
  "purpose": "A confidential peer forum of executives from different organizations who help each other decide better and hold each other accountable.",
  "values": [
    "confidentiality",
    "candour",
    "experience, not advice",
    "commitment"
  ],
  "ground_rules": [
    "What is said in the forum stays in the forum.",
    "Share experience, not advice.",
    "Come prepared; phones away.",
    "No prices, bids, wages or capacity: nothing a competition authority would frown at."
  ],
  "pledge": "I will keep everything shared in this forum confidential, attend and prepare, share my experience honestly, and keep my commitments.",
  "size": {
    "min": 6,
    "max": 12
  },
  "cadence": {
    "every": "monthly",
    "hours": 4,
    "start_time": "09:00",
    "timezone": "UTC"
  },
  "composition": {
    "max_per_org": 1,
    "max_per_industry": {}
  },
  "thresholds": {
    "admission": {
      "rule": "unanimous",
      "quorum": "2/3"
    },
    "removal": {
      "rule": "2/3"
    },
    "amendment": {
      "rule": "2/3"
    },
    "hub_move": {
      "rule": "majority"
    },
    "waiver": {
      "rule": "unanimous",
      "quorum": "2/3"
    }
  },
  "attendance": {
    "max_misses": 2,
    "late_weight": "1/2"
  },
  "updates": {
    "retention_days": 30
  },
  "agenda": [
    "Confidentiality reminder",
    "Check-in round",
    "Commitments review",
    "Member updates",
    "Dilemma",
    "Parking lot",
    "New commitments and close"
  ]
});

/** A deep copy: charters travel as plain maps. */
export const defaultCharter = () => JSON.parse(JSON.stringify(DEFAULT_CHARTER));

/** What a pledge signature covers: SHA-256("PFP/1 pledge" NUL encode(pledge text)). */
export function pledgeHash(charter) {
  return sha256(concatBytes(ascii("PFP/1 pledge\x00"), encode(charter.pledge)));
}
