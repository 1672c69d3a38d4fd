// What members read off the view (port of cli/member/reports.py and meetings.py): misses
// and attendance-threshold alerts, the "newsletter effect" window, and the meetings as an
// iCalendar file generated here, on the device — the node never sees a meeting's title.

import { active } from "./governance.js";
import { parseFraction } from "./motions.js";

const YEAR_MS = 365 * 86_400_000;

/** Epoch ms of a local wall time `YYYY-MM-DDTHH:MM` in the IANA zone `tz` (Meeting.start_ms). */
export function zonedMs(local, tz) {
  const [d, t = "00:00"] = local.split("T");
  const [y, mo, da] = d.split("-").map(Number);
  const [hh, mm] = t.split(":").map(Number);
  const guess = Date.UTC(y, mo - 1, da, hh, mm);
  // The zone's offset at that instant, read back through Intl; twice, for DST edges.
  const offset = (ms) => {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
    return Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second) - ms;
  };
  const first = guess - offset(guess);
  return guess - offset(first);
}

export const startMs = (m) => zonedMs(m.start, m.timezone);
export const endMs = (m) => startMs(m) + m.hours * 3_600_000;

/** A member's misses over the year before `v.now`: absent 1, late the charter's weight. */
export function misses(v, member) {
  const [ln, ld] = parseFraction(v.charter.attendance.late_weight, "attendance.late_weight");
  let num = 0; // in units of 1/ld
  for (const [mid, marks] of Object.entries(v.attendance)) {
    const meeting = v.meetings[mid];
    if (!(member in marks) || (meeting && startMs(meeting) < v.now - YEAR_MS)) continue;
    if (marks[member] === "absent") num += ld;
    else if (marks[member] === "late") num += ln;
  }
  return num / ld;
}

/** Members whose misses reached the charter's threshold, addressed to moderators. */
export function attendanceAlerts(v) {
  const limit = Number(v.charter.attendance.max_misses);
  return active(v).flatMap((m) => {
    const n = misses(v, m);
    if (n < limit) return [];
    const shown = Number.isInteger(n) ? n : Math.round(n * 100) / 100;
    return [{ to: "moderator", kind: "attendance", member: m, misses: shown,
      text: `${m} has missed ${shown} meeting(s) this year (threshold ${limit}; late counts ${v.charter.attendance.late_weight})` }];
  });
}

/** The newsletter effect: active members with no contribution since the start of the
 *  last `back` meetings held. Reading leaves no trace, by design, so it is not counted. */
export function quietMembers(v, back = 3) {
  const held = Object.values(v.meetings).filter((m) => startMs(m) <= v.now).sort((a, b) => startMs(a) - startMs(b));
  if (held.length < back) return { meetingsBack: back, held: held.length, since: null, quiet: [] };
  const since = startMs(held[held.length - back]);
  const quiet = active(v).filter((m) => !(v.contributions[m] ?? []).some((ts) => ts >= since));
  return { meetingsBack: back, held: held.length, since: held[held.length - back].id, quiet };
}

// ---------------------------------------------------------------------------- iCalendar

const esc = (s) => String(s).replace(/\\/g, "\\\\").replace(/;/g, "\\;").replace(/,/g, "\\,").replace(/\r?\n/g, "\\n");
const stamp = (local) => local.replace(/[-:]/g, "").padEnd(13, "0") + "00"; // YYYYMMDDTHHMM + SS

/** RFC 5545 §3.1: lines of at most 75 octets, continued with CRLF and a space. */
function fold(line) {
  const bytes = new TextEncoder().encode(line);
  if (bytes.length <= 75) return line;
  const out = [];
  let cur = "";
  let size = 0;
  for (const ch of line) {
    const n = new TextEncoder().encode(ch).length;
    if (size + n > (out.length ? 74 : 75)) {
      out.push(cur);
      [cur, size] = ["", 0];
    }
    cur += ch;
    size += n;
  }
  out.push(cur);
  return out.join("\r\n ");
}

/** The meetings as an .ics file: titles and times only, never agenda or content, since
 *  a calendar ends up on servers the forum does not control (meetings.to_ical). */
export function toIcal(name, meetings, forum) {
  const uidPart = forum.split(":")[0].replace(/^!/, "");
  const lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//PeerForum//member client//EN", `X-WR-CALNAME:${esc(name || "PeerForum")}`];
  for (const m of [...meetings].sort((a, b) => a.id.localeCompare(b.id))) {
    const end = new Date(Date.UTC(...m.start.split(/[-T:]/).map((x, i) => Number(x) - (i === 1 ? 1 : 0))) + m.hours * 3_600_000).toISOString().slice(0, 16);
    lines.push("BEGIN:VEVENT", `UID:${m.id}.${uidPart}@peerforum`, `SUMMARY:${esc(name ? `${name}: ${m.title}` : m.title)}`,
      `DTSTART;TZID=${m.timezone}:${stamp(m.start)}`, `DTEND;TZID=${m.timezone}:${stamp(end)}`, "DTSTAMP:20000101T000000Z", "END:VEVENT");
  }
  lines.push("END:VCALENDAR");
  return lines.map(fold).join("\r\n") + "\r\n";
}
