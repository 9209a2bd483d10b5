// Game clocks as the server sends them (goapp.rules.clock: GameClock.to_payload), counted
// down locally: the running player's time is the snapshot minus (server now - server_ms),
// where "server now" is local time corrected by the offset measured with ping/pong.

import { fmtClock } from "./ui.js";

const HOUR = 3_600_000, DAY = 24 * HOUR;

/** Days and hours for correspondence clocks: "2d 5h", "5h 12m", then "12:34". */
export function fmtDays(ms) {
  if (ms === null || ms === undefined) return "∞";
  const t = Math.max(0, ms);
  if (t >= DAY) return `${Math.floor(t / DAY)}d ${Math.floor((t % DAY) / HOUR)}h`;
  if (t >= HOUR) return `${Math.floor(t / HOUR)}h ${Math.floor((t % HOUR) / 60_000)}m`;
  return fmtClock(t);
}

/** {main, extra, low, flagged, text, sub} for one player's side of ``clock`` at ``now``. */
export function clockFace(clock, color, now, periodFullMs = 0) {
  if (!clock || clock.system === "none") return { text: "", sub: "no time limit", low: false, running: false };
  const pc = clock[color];
  if (!pc) return { text: "", sub: "", low: false, running: false };
  const running = clock.state === "running" && clock.to_move === color;
  let elapsed = running ? Math.max(0, now - clock.server_ms) : 0;
  let main = pc.main_ms, periods = pc.periods, period = pc.period_ms, stones = pc.stones;
  const flagged = clock.flagged === color;
  let text, sub = "", low = false;
  switch (clock.system) {
    case "absolute":
    case "fischer":
      main = Math.max(0, main - elapsed);
      text = fmtClock(main);
      low = main < 30_000;
      break;
    case "byoyomi": {
      if (elapsed < main) {
        main -= elapsed;
        text = fmtClock(main);
        sub = periods > 0 ? `+ ${periods}×${Math.round((periodFullMs || period) / 1000)}s` : "";
      } else {
        let over = elapsed - main;
        main = 0;
        const full = periodFullMs || period;
        if (periods > 0 && over >= period) {
          over -= period;
          const used = Math.floor(over / full) + 1;
          periods -= used;
          period = full - (over % full);
        } else period -= over;
        if (periods <= 0) { periods = 0; period = 0; }
        text = fmtClock(period);
        sub = periods > 0 ? (periods === 1 ? "last period" : `${periods} periods`) : "";
        low = periods <= 1 || period < 10_000;
      }
      break;
    }
    case "canadian": {
      if (elapsed < main) {
        main -= elapsed;
        text = fmtClock(main);
        sub = "main time";
      } else {
        period = Math.max(0, period - (elapsed - main));
        text = fmtClock(period);
        sub = `${stones} stone${stones === 1 ? "" : "s"}`;
        low = period < 30_000;
      }
      break;
    }
    case "correspondence": {
      // Days per move. The deadline (wall clock, weekends included when they are off) is
      // the server's: what is left is the deadline minus now.
      if (running && clock.deadline_ms) {
        const left = Math.max(0, clock.deadline_ms - now);
        text = fmtDays(left);
        sub = "left for this move";
        low = left < 6 * HOUR;
      } else {
        text = fmtDays(period);
        sub = "per move";
      }
      break;
    }
    case "simple":
      period = Math.max(0, period - elapsed);
      text = fmtClock(period);
      sub = "per move";
      low = period < 10_000;
      break;
    default:
      text = fmtClock(pc.remaining_ms == null ? null : Math.max(0, pc.remaining_ms - elapsed));
  }
  if (flagged) { text = "0:00"; sub = "out of time"; low = true; }
  return { text, sub, low, running };
}
