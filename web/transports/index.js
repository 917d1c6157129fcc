// The five techniques, one module each, and the automatic client that picks
// among four of them (auto.js). This list is the only place the page
// names them: the panes, the tabs, the Compare tables and the shared
// connections (connections.js) are all made from it, so a sixth technique is a
// new module plus one line here (and its words in i18n.js).

import { ShortPoll } from './short-poll.js';
import { LongPoll } from './long-poll.js';
import { Sse } from './sse.js';
import { WebSocketTransport } from './websocket.js';
import { WebTransportTransport } from './webtransport.js';
import { Auto } from './auto.js';

export const TRANSPORTS = [ShortPoll, LongPoll, Sse, WebSocketTransport, WebTransportTransport, Auto];

/** The server's names for them, in display order. */
export const KINDS = TRANSPORTS.map((module) => module.kind);

/** The module of a kind. */
export function transportOf(kind) {
  return TRANSPORTS.find((module) => module.kind === kind);
}
