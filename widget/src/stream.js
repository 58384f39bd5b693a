// One conversation's message stream: dedupe by seq, order by seq, hold messages that
// arrive after a gap until the gap is filled ("exactly-once display").
export class Stream {
  constructor() { this.reset(null, 0); }

  reset(epoch, base) {
    this.epoch = epoch;
    this.base = base;        // seqs <= base are not shown (older than what we loaded)
    this.bySeq = new Map();  // seq -> message
    this.contiguous = base;  // every seq in (base, contiguous] is present
  }

  // -> "added" | "duplicate" | "stale" (other epoch: the caller reloads)
  add(m) {
    if (this.epoch === null) this.epoch = m.epoch;
    if (m.epoch !== this.epoch) return "stale";
    if (m.seq <= this.base || this.bySeq.has(m.seq)) return "duplicate";
    this.bySeq.set(m.seq, m);
    while (this.bySeq.has(this.contiguous + 1)) this.contiguous++;
    return "added";
  }

  // older messages (ascending, ending just below `base`, as `messages:history` with
  // before_seq = base + 1 returns them): the shown range starts at the first of them
  prepend(messages) {
    let base = this.base;
    for (let i = messages.length - 1; i >= 0; i--) {
      const m = messages[i];
      if (m.epoch !== this.epoch || m.seq !== base) break;
      this.bySeq.set(m.seq, m);
      base = m.seq - 1;
    }
    this.base = base;
  }

  update(m) { if (m.epoch === this.epoch && this.bySeq.has(m.seq)) this.bySeq.set(m.seq, m); }

  get hasGap() { for (const s of this.bySeq.keys()) if (s > this.contiguous) return true; return false; }

  // messages ready to display, ascending by seq (a visitor's stream holds the places of
  // agents' private notes, `hidden`: never displayed)
  visible() {
    const out = [];
    for (let s = this.base + 1; s <= this.contiguous; s++) {
      const m = this.bySeq.get(s);
      if (!m.hidden) out.push(m);
    }
    return out;
  }
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function fmtSize(n) {
  if (n >= 1048576) return `${(n / 1048576).toFixed(n % 1048576 ? 1 : 0)} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} B`;
}

export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
