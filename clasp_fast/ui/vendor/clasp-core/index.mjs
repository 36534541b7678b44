// src/codec.ts
import { decode as msgpackDecode } from "@msgpack/msgpack";

// src/types.ts
var PROTOCOL_VERSION = 1;
var DEFAULT_WS_PORT = 7330;
var DEFAULT_DISCOVERY_PORT = 7331;
var WS_SUBPROTOCOL = "clasp";
var MessageType = /* @__PURE__ */ ((MessageType2) => {
  MessageType2[MessageType2["Hello"] = 1] = "Hello";
  MessageType2[MessageType2["Welcome"] = 2] = "Welcome";
  MessageType2[MessageType2["Announce"] = 3] = "Announce";
  MessageType2[MessageType2["Subscribe"] = 16] = "Subscribe";
  MessageType2[MessageType2["Unsubscribe"] = 17] = "Unsubscribe";
  MessageType2[MessageType2["Publish"] = 32] = "Publish";
  MessageType2[MessageType2["Set"] = 33] = "Set";
  MessageType2[MessageType2["Get"] = 34] = "Get";
  MessageType2[MessageType2["Snapshot"] = 35] = "Snapshot";
  MessageType2[MessageType2["Bundle"] = 48] = "Bundle";
  MessageType2[MessageType2["Sync"] = 64] = "Sync";
  MessageType2[MessageType2["Ping"] = 65] = "Ping";
  MessageType2[MessageType2["Pong"] = 66] = "Pong";
  MessageType2[MessageType2["Ack"] = 80] = "Ack";
  MessageType2[MessageType2["Error"] = 81] = "Error";
  MessageType2[MessageType2["Query"] = 96] = "Query";
  MessageType2[MessageType2["Result"] = 97] = "Result";
  return MessageType2;
})(MessageType || {});
var QoS = /* @__PURE__ */ ((QoS2) => {
  QoS2[QoS2["Fire"] = 0] = "Fire";
  QoS2[QoS2["Confirm"] = 1] = "Confirm";
  QoS2[QoS2["Commit"] = 2] = "Commit";
  return QoS2;
})(QoS || {});
var SignalType = {
  Param: "param",
  Event: "event",
  Stream: "stream",
  Gesture: "gesture",
  Timeline: "timeline"
};
function isHelloMessage(msg) {
  return typeof msg === "object" && msg !== null && msg.type === "HELLO";
}
function isWelcomeMessage(msg) {
  return typeof msg === "object" && msg !== null && msg.type === "WELCOME";
}
function isSetMessage(msg) {
  return typeof msg === "object" && msg !== null && msg.type === "SET";
}
function isPublishMessage(msg) {
  return typeof msg === "object" && msg !== null && msg.type === "PUBLISH";
}
function isSubscribeMessage(msg) {
  return typeof msg === "object" && msg !== null && msg.type === "SUBSCRIBE";
}
function isErrorMessage(msg) {
  return typeof msg === "object" && msg !== null && msg.type === "ERROR";
}
function isAckMessage(msg) {
  return typeof msg === "object" && msg !== null && msg.type === "ACK";
}

// src/codec.ts
var MAGIC_BYTE = 83;
var HEADER_SIZE = 4;
var HEADER_SIZE_WITH_TS = 12;
var MSG = {
  HELLO: 1,
  WELCOME: 2,
  ANNOUNCE: 3,
  SUBSCRIBE: 16,
  UNSUBSCRIBE: 17,
  PUBLISH: 32,
  SET: 33,
  GET: 34,
  SNAPSHOT: 35,
  BUNDLE: 48,
  SYNC: 64,
  PING: 65,
  PONG: 66,
  ACK: 80,
  ERROR: 81,
  QUERY: 96,
  RESULT: 97
};
var VAL = {
  NULL: 0,
  BOOL: 1,
  I8: 2,
  I16: 3,
  I32: 4,
  I64: 5,
  F32: 6,
  F64: 7,
  STRING: 8,
  BYTES: 9,
  ARRAY: 10,
  MAP: 11
};
var SIG = {
  PARAM: 0,
  EVENT: 1,
  STREAM: 2,
  GESTURE: 3,
  TIMELINE: 4
};
var PHASE = {
  START: 0,
  MOVE: 1,
  END: 2,
  CANCEL: 3
};
function encodeFlags(flags) {
  let byte = 0;
  byte |= (flags.qos & 3) << 6;
  if (flags.hasTimestamp) byte |= 32;
  if (flags.encrypted) byte |= 16;
  if (flags.compressed) byte |= 8;
  byte |= (flags.version ?? 1) & 7;
  return byte;
}
function decodeFlags(byte) {
  return {
    qos: byte >> 6 & 3,
    hasTimestamp: (byte & 32) !== 0,
    encrypted: (byte & 16) !== 0,
    compressed: (byte & 8) !== 0,
    version: byte & 7
  };
}
function encodeFrame(payload, options = {}) {
  const hasTimestamp = options.timestamp !== void 0;
  const headerSize = hasTimestamp ? HEADER_SIZE_WITH_TS : HEADER_SIZE;
  const frame = new Uint8Array(headerSize + payload.length);
  const view = new DataView(frame.buffer);
  if (payload.length > 65535) {
    throw new Error(`Payload too large: ${payload.length} bytes (max 65535)`);
  }
  frame[0] = MAGIC_BYTE;
  frame[1] = encodeFlags({
    qos: options.qos ?? 0 /* Fire */,
    hasTimestamp,
    encrypted: false,
    compressed: false,
    version: 1
    // binary encoding (1 = binary, 0 = MessagePack legacy)
  });
  view.setUint16(2, payload.length, false);
  if (hasTimestamp && options.timestamp !== void 0) {
    const ts = typeof options.timestamp === "bigint" ? options.timestamp : BigInt(options.timestamp);
    view.setBigUint64(4, ts, false);
  }
  frame.set(payload, headerSize);
  return frame;
}
function decodeFrame(data) {
  if (data.length < HEADER_SIZE) {
    throw new Error("Frame too small");
  }
  if (data[0] !== MAGIC_BYTE) {
    throw new Error(`Invalid magic byte: 0x${data[0].toString(16)}`);
  }
  const view = new DataView(data.buffer, data.byteOffset);
  const flags = decodeFlags(data[1]);
  const payloadLength = view.getUint16(2, false);
  const headerSize = flags.hasTimestamp ? HEADER_SIZE_WITH_TS : HEADER_SIZE;
  if (data.length < headerSize + payloadLength) {
    throw new Error("Frame incomplete");
  }
  let timestamp;
  if (flags.hasTimestamp) {
    timestamp = view.getBigUint64(4, false);
  }
  const payload = data.slice(headerSize, headerSize + payloadLength);
  return { payload, qos: flags.qos, timestamp, flags };
}
function estimateValueSize(value) {
  if (value === null || value === void 0) return 1;
  if (typeof value === "boolean") return 2;
  if (typeof value === "number") return 9;
  if (typeof value === "string") return value.length + 4;
  if (value instanceof Uint8Array) return value.length + 4;
  if (Array.isArray(value)) {
    let size = 4;
    for (const v of value) {
      size += estimateValueSize(v) + 1;
    }
    return size;
  }
  if (typeof value === "object") {
    let size = 4;
    for (const [k, v] of Object.entries(value)) {
      size += k.length + 4 + estimateValueSize(v) + 1;
    }
    return size;
  }
  return 16;
}
function estimateMessageSize(message) {
  let size = 64;
  if ("address" in message && typeof message.address === "string") {
    size += message.address.length + 4;
  }
  if ("pattern" in message && typeof message.pattern === "string") {
    size += message.pattern.length + 4;
  }
  if ("value" in message) {
    size += estimateValueSize(message.value);
  }
  if ("payload" in message) {
    size += estimateValueSize(message.payload);
  }
  return Math.max(size * 2, 4096);
}
function encodeMessageBinary(message) {
  const estimatedSize = estimateMessageSize(message);
  const buf = new ArrayBuffer(estimatedSize);
  const view = new DataView(buf);
  let offset = 0;
  switch (message.type) {
    case "HELLO":
      offset = encodeHello(view, offset, message);
      break;
    case "WELCOME":
      offset = encodeWelcome(view, offset, message);
      break;
    case "ANNOUNCE":
      offset = encodeAnnounce(view, offset, message);
      break;
    case "SUBSCRIBE":
      offset = encodeSubscribe(view, offset, message);
      break;
    case "UNSUBSCRIBE":
      offset = encodeUnsubscribe(view, offset, message);
      break;
    case "PUBLISH":
      offset = encodePublish(view, offset, message);
      break;
    case "SET":
      offset = encodeSet(view, offset, message);
      break;
    case "GET":
      offset = encodeGet(view, offset, message);
      break;
    case "SNAPSHOT":
      offset = encodeSnapshot(view, offset, message);
      break;
    case "BUNDLE":
      offset = encodeBundle(view, offset, message);
      break;
    case "SYNC":
      offset = encodeSync(view, offset, message);
      break;
    case "PING":
      view.setUint8(offset++, MSG.PING);
      break;
    case "PONG":
      view.setUint8(offset++, MSG.PONG);
      break;
    case "ACK":
      offset = encodeAck(view, offset, message);
      break;
    case "ERROR":
      offset = encodeError(view, offset, message);
      break;
    case "QUERY":
      offset = encodeQuery(view, offset, message);
      break;
    case "RESULT":
      offset = encodeResult(view, offset, message);
      break;
    default:
      throw new Error(`Unknown message type: ${message.type}`);
  }
  return new Uint8Array(buf, 0, offset);
}
function decodeMessageBinary(data) {
  if (data.length === 0) {
    throw new Error("Empty message data");
  }
  const first = data[0];
  if (isMsgpackMap(first)) {
    return msgpackDecode(data);
  }
  return decodeV3Binary(data);
}
function encodeMessage(message, options = {}) {
  const payload = encodeMessageBinary(message);
  return encodeFrame(payload, {
    ...options,
    qos: options.qos ?? getDefaultQoS(message)
  });
}
function decodeMessage(data) {
  const { payload, flags, timestamp } = decodeFrame(data);
  const message = decodeMessageBinary(payload);
  return { message, flags, timestamp };
}
function encode(message, qos) {
  return encodeMessage(message, { qos });
}
function decode(data) {
  return decodeMessage(data).message;
}
function checkComplete(data) {
  if (data.length < HEADER_SIZE) {
    return null;
  }
  if (data[0] !== MAGIC_BYTE) {
    return null;
  }
  const flags = decodeFlags(data[1]);
  const view = new DataView(data.buffer, data.byteOffset);
  const payloadLength = view.getUint16(2, false);
  const headerSize = flags.hasTimestamp ? HEADER_SIZE_WITH_TS : HEADER_SIZE;
  const totalSize = headerSize + payloadLength;
  if (data.length >= totalSize) {
    return totalSize;
  }
  return null;
}
function encodeSet(view, offset, msg) {
  view.setUint8(offset++, MSG.SET);
  const vtype = getValueType(msg.value);
  let flags = vtype & 15;
  if (msg.revision !== void 0) flags |= 128;
  if (msg.lock) flags |= 64;
  if (msg.unlock) flags |= 32;
  view.setUint8(offset++, flags);
  offset = encodeString(view, offset, msg.address);
  offset = encodeValueData(view, offset, msg.value);
  if (msg.revision !== void 0) {
    view.setBigUint64(offset, BigInt(msg.revision), false);
    offset += 8;
  }
  return offset;
}
function encodePublish(view, offset, msg) {
  view.setUint8(offset++, MSG.PUBLISH);
  const sigCode = msg.signal ? getSignalTypeCode(msg.signal) : SIG.EVENT;
  const phaseCode = msg.phase ? getPhaseCode(msg.phase) : PHASE.START;
  let flags = (sigCode & 7) << 5;
  if (msg.timestamp !== void 0) flags |= 16;
  if (msg.id !== void 0) flags |= 8;
  flags |= phaseCode & 7;
  view.setUint8(offset++, flags);
  offset = encodeString(view, offset, msg.address);
  if (msg.value !== void 0) {
    view.setUint8(offset++, 1);
    view.setUint8(offset++, getValueType(msg.value));
    offset = encodeValueData(view, offset, msg.value);
  } else if (msg.payload !== void 0) {
    view.setUint8(offset++, 1);
    view.setUint8(offset++, getValueType(msg.payload));
    offset = encodeValueData(view, offset, msg.payload);
  } else if (msg.samples !== void 0) {
    view.setUint8(offset++, 2);
    view.setUint16(offset, msg.samples.length, false);
    offset += 2;
    for (const sample of msg.samples) {
      view.setFloat64(offset, sample, false);
      offset += 8;
    }
  } else {
    view.setUint8(offset++, 0);
  }
  if (msg.timestamp !== void 0) {
    view.setBigUint64(offset, BigInt(msg.timestamp), false);
    offset += 8;
  }
  if (msg.id !== void 0) {
    view.setUint32(offset, msg.id, false);
    offset += 4;
  }
  if (msg.rate !== void 0) {
    view.setUint32(offset, msg.rate, false);
    offset += 4;
  }
  return offset;
}
function encodeHello(view, offset, msg) {
  view.setUint8(offset++, MSG.HELLO);
  view.setUint8(offset++, msg.version);
  let features = 0;
  for (const f of msg.features) {
    if (f === "param") features |= 128;
    if (f === "event") features |= 64;
    if (f === "stream") features |= 32;
    if (f === "gesture") features |= 16;
    if (f === "timeline") features |= 8;
  }
  view.setUint8(offset++, features);
  offset = encodeString(view, offset, msg.name);
  if (msg.token) {
    offset = encodeString(view, offset, msg.token);
  } else {
    view.setUint16(offset, 0, false);
    offset += 2;
  }
  return offset;
}
function encodeWelcome(view, offset, msg) {
  view.setUint8(offset++, MSG.WELCOME);
  view.setUint8(offset++, msg.version);
  let features = 0;
  for (const f of msg.features) {
    if (f === "param") features |= 128;
    if (f === "event") features |= 64;
    if (f === "stream") features |= 32;
    if (f === "gesture") features |= 16;
    if (f === "timeline") features |= 8;
  }
  view.setUint8(offset++, features);
  view.setBigUint64(offset, BigInt(msg.time), false);
  offset += 8;
  offset = encodeString(view, offset, msg.session);
  offset = encodeString(view, offset, msg.name);
  if (msg.token) {
    offset = encodeString(view, offset, msg.token);
  } else {
    view.setUint16(offset, 0, false);
    offset += 2;
  }
  return offset;
}
function encodeAnnounce(view, offset, msg) {
  view.setUint8(offset++, MSG.ANNOUNCE);
  offset = encodeString(view, offset, msg.namespace ?? "");
  view.setUint16(offset, msg.signals.length, false);
  offset += 2;
  for (const sig of msg.signals) {
    offset = encodeString(view, offset, sig.address);
    view.setUint8(offset++, getSignalTypeCode(sig.type));
    let optFlags = 0;
    if (sig.datatype) optFlags |= 1;
    if (sig.access) optFlags |= 2;
    if (sig.meta) optFlags |= 4;
    view.setUint8(offset++, optFlags);
    if (sig.datatype) offset = encodeString(view, offset, sig.datatype);
    if (sig.access) offset = encodeString(view, offset, sig.access);
    if (sig.meta) {
      let metaFlags = 0;
      if (sig.meta.unit) metaFlags |= 1;
      if (sig.meta.range) metaFlags |= 2;
      if (sig.meta.default !== void 0) metaFlags |= 4;
      if (sig.meta.description) metaFlags |= 8;
      view.setUint8(offset++, metaFlags);
      if (sig.meta.unit) offset = encodeString(view, offset, sig.meta.unit);
      if (sig.meta.range) {
        view.setFloat64(offset, sig.meta.range[0], false);
        offset += 8;
        view.setFloat64(offset, sig.meta.range[1], false);
        offset += 8;
      }
      if (sig.meta.default !== void 0) {
        view.setUint8(offset++, getValueType(sig.meta.default));
        offset = encodeValueData(view, offset, sig.meta.default);
      }
      if (sig.meta.description) offset = encodeString(view, offset, sig.meta.description);
    }
  }
  return offset;
}
function encodeSubscribe(view, offset, msg) {
  view.setUint8(offset++, MSG.SUBSCRIBE);
  view.setUint32(offset, msg.id, false);
  offset += 4;
  offset = encodeString(view, offset, msg.pattern);
  let typeMask = 255;
  if (msg.types && msg.types.length > 0) {
    typeMask = 0;
    for (const t of msg.types) {
      if (t === "param") typeMask |= 1;
      if (t === "event") typeMask |= 2;
      if (t === "stream") typeMask |= 4;
      if (t === "gesture") typeMask |= 8;
      if (t === "timeline") typeMask |= 16;
    }
  }
  view.setUint8(offset++, typeMask);
  if (msg.options) {
    let optFlags = 0;
    if (msg.options.maxRate !== void 0) optFlags |= 1;
    if (msg.options.epsilon !== void 0) optFlags |= 2;
    if (msg.options.history !== void 0) optFlags |= 4;
    if (msg.options.window !== void 0) optFlags |= 8;
    view.setUint8(offset++, optFlags);
    if (msg.options.maxRate !== void 0) {
      view.setUint32(offset, msg.options.maxRate, false);
      offset += 4;
    }
    if (msg.options.epsilon !== void 0) {
      view.setFloat64(offset, msg.options.epsilon, false);
      offset += 8;
    }
    if (msg.options.history !== void 0) {
      view.setUint32(offset, msg.options.history, false);
      offset += 4;
    }
    if (msg.options.window !== void 0) {
      view.setUint32(offset, msg.options.window, false);
      offset += 4;
    }
  } else {
    view.setUint8(offset++, 0);
  }
  return offset;
}
function encodeUnsubscribe(view, offset, msg) {
  view.setUint8(offset++, MSG.UNSUBSCRIBE);
  view.setUint32(offset, msg.id, false);
  offset += 4;
  return offset;
}
function encodeGet(view, offset, msg) {
  view.setUint8(offset++, MSG.GET);
  offset = encodeString(view, offset, msg.address);
  return offset;
}
function encodeSnapshot(view, offset, msg) {
  view.setUint8(offset++, MSG.SNAPSHOT);
  view.setUint16(offset, msg.params.length, false);
  offset += 2;
  for (const param of msg.params) {
    offset = encodeString(view, offset, param.address);
    view.setUint8(offset++, getValueType(param.value));
    offset = encodeValueData(view, offset, param.value);
    view.setBigUint64(offset, BigInt(param.revision), false);
    offset += 8;
    let optFlags = 0;
    if (param.writer) optFlags |= 1;
    if (param.timestamp !== void 0) optFlags |= 2;
    view.setUint8(offset++, optFlags);
    if (param.writer) offset = encodeString(view, offset, param.writer);
    if (param.timestamp !== void 0) {
      view.setBigUint64(offset, BigInt(param.timestamp), false);
      offset += 8;
    }
  }
  return offset;
}
function encodeBundle(view, offset, msg) {
  view.setUint8(offset++, MSG.BUNDLE);
  let flags = 0;
  if (msg.timestamp !== void 0) flags |= 128;
  view.setUint8(offset++, flags);
  view.setUint16(offset, msg.messages.length, false);
  offset += 2;
  if (msg.timestamp !== void 0) {
    view.setBigUint64(offset, BigInt(msg.timestamp), false);
    offset += 8;
  }
  for (const innerMsg of msg.messages) {
    const innerPayload = encodeMessageBinary(innerMsg);
    view.setUint16(offset, innerPayload.length, false);
    offset += 2;
    new Uint8Array(view.buffer).set(innerPayload, offset);
    offset += innerPayload.length;
  }
  return offset;
}
function encodeSync(view, offset, msg) {
  view.setUint8(offset++, MSG.SYNC);
  let flags = 0;
  if (msg.t2 !== void 0) flags |= 1;
  if (msg.t3 !== void 0) flags |= 2;
  view.setUint8(offset++, flags);
  view.setBigUint64(offset, BigInt(msg.t1), false);
  offset += 8;
  if (msg.t2 !== void 0) {
    view.setBigUint64(offset, BigInt(msg.t2), false);
    offset += 8;
  }
  if (msg.t3 !== void 0) {
    view.setBigUint64(offset, BigInt(msg.t3), false);
    offset += 8;
  }
  return offset;
}
function encodeAck(view, offset, msg) {
  view.setUint8(offset++, MSG.ACK);
  let flags = 0;
  if (msg.address) flags |= 1;
  if (msg.revision !== void 0) flags |= 2;
  if (msg.locked !== void 0) flags |= 4;
  if (msg.holder) flags |= 8;
  if (msg.correlationId !== void 0) flags |= 16;
  view.setUint8(offset++, flags);
  if (msg.address) offset = encodeString(view, offset, msg.address);
  if (msg.revision !== void 0) {
    view.setBigUint64(offset, BigInt(msg.revision), false);
    offset += 8;
  }
  if (msg.locked !== void 0) {
    view.setUint8(offset++, msg.locked ? 1 : 0);
  }
  if (msg.holder) offset = encodeString(view, offset, msg.holder);
  if (msg.correlationId !== void 0) {
    view.setUint32(offset, msg.correlationId, false);
    offset += 4;
  }
  return offset;
}
function encodeError(view, offset, msg) {
  view.setUint8(offset++, MSG.ERROR);
  view.setUint16(offset, msg.code, false);
  offset += 2;
  offset = encodeString(view, offset, msg.message);
  let flags = 0;
  if (msg.address) flags |= 1;
  if (msg.correlationId !== void 0) flags |= 2;
  view.setUint8(offset++, flags);
  if (msg.address) offset = encodeString(view, offset, msg.address);
  if (msg.correlationId !== void 0) {
    view.setUint32(offset, msg.correlationId, false);
    offset += 4;
  }
  return offset;
}
function encodeQuery(view, offset, msg) {
  view.setUint8(offset++, MSG.QUERY);
  offset = encodeString(view, offset, msg.pattern);
  return offset;
}
function encodeResult(view, offset, msg) {
  view.setUint8(offset++, MSG.RESULT);
  view.setUint16(offset, msg.signals.length, false);
  offset += 2;
  for (const sig of msg.signals) {
    offset = encodeString(view, offset, sig.address);
    view.setUint8(offset++, getSignalTypeCode(sig.type));
    let optFlags = 0;
    if (sig.datatype) optFlags |= 1;
    if (sig.access) optFlags |= 2;
    view.setUint8(offset++, optFlags);
    if (sig.datatype) offset = encodeString(view, offset, sig.datatype);
    if (sig.access) offset = encodeString(view, offset, sig.access);
  }
  return offset;
}
function decodeV3Binary(data) {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let offset = 0;
  const msgType = view.getUint8(offset++);
  switch (msgType) {
    case MSG.HELLO:
      return decodeHello(view, offset);
    case MSG.WELCOME:
      return decodeWelcome(view, offset);
    case MSG.ANNOUNCE:
      return decodeAnnounce(view, offset);
    case MSG.SUBSCRIBE:
      return decodeSubscribe(view, offset);
    case MSG.UNSUBSCRIBE:
      return decodeUnsubscribe(view, offset);
    case MSG.PUBLISH:
      return decodePublish(view, offset);
    case MSG.SET:
      return decodeSet(view, offset);
    case MSG.GET:
      return decodeGet(view, offset);
    case MSG.SNAPSHOT:
      return decodeSnapshot(view, offset);
    case MSG.BUNDLE:
      return decodeBundle(view, offset);
    case MSG.SYNC:
      return decodeSyncMsg(view, offset);
    case MSG.PING:
      return { type: "PING" };
    case MSG.PONG:
      return { type: "PONG" };
    case MSG.ACK:
      return decodeAck(view, offset);
    case MSG.ERROR:
      return decodeErrorMsg(view, offset);
    case MSG.QUERY:
      return decodeQuery(view, offset);
    case MSG.RESULT:
      return decodeResultMsg(view, offset);
    default:
      throw new Error(`Unknown message type: 0x${msgType.toString(16)}`);
  }
}
function decodeSet(view, offset) {
  const flags = view.getUint8(offset++);
  const vtype = flags & 15;
  const hasRev = (flags & 128) !== 0;
  const lock = (flags & 64) !== 0;
  const unlock = (flags & 32) !== 0;
  const [address, newOffset] = decodeString(view, offset);
  offset = newOffset;
  const [value, finalOffset] = decodeValueData(view, offset, vtype);
  offset = finalOffset;
  const revision = hasRev ? Number(view.getBigUint64(offset, false)) : void 0;
  return {
    type: "SET",
    address,
    value,
    revision,
    lock: lock || void 0,
    unlock: unlock || void 0
  };
}
function decodePublish(view, offset) {
  const flags = view.getUint8(offset++);
  const sigCode = flags >> 5 & 7;
  const hasTs = (flags & 16) !== 0;
  const hasId = (flags & 8) !== 0;
  const phaseCode = flags & 7;
  const [address, newOffset] = decodeString(view, offset);
  offset = newOffset;
  const valueIndicator = view.getUint8(offset++);
  let value;
  let payload;
  let samples;
  if (valueIndicator === 1) {
    const vtype = view.getUint8(offset++);
    const [v, o] = decodeValueData(view, offset, vtype);
    value = v;
    offset = o;
  } else if (valueIndicator === 2) {
    const count = view.getUint16(offset, false);
    offset += 2;
    samples = [];
    for (let i = 0; i < count; i++) {
      samples.push(view.getFloat64(offset, false));
      offset += 8;
    }
  }
  const timestamp = hasTs ? Number(view.getBigUint64(offset, false)) : void 0;
  if (hasTs) offset += 8;
  const id = hasId ? view.getUint32(offset, false) : void 0;
  if (hasId) offset += 4;
  let rate;
  if (offset + 4 <= view.byteLength) {
    rate = view.getUint32(offset, false);
    offset += 4;
  }
  return {
    type: "PUBLISH",
    address,
    signal: getSignalTypeFromCode(sigCode),
    value,
    payload,
    samples,
    rate,
    id,
    phase: getPhaseFromCode(phaseCode),
    timestamp
  };
}
function decodeHello(view, offset) {
  const version = view.getUint8(offset++);
  const featureFlags = view.getUint8(offset++);
  const features = [];
  if (featureFlags & 128) features.push("param");
  if (featureFlags & 64) features.push("event");
  if (featureFlags & 32) features.push("stream");
  if (featureFlags & 16) features.push("gesture");
  if (featureFlags & 8) features.push("timeline");
  const [name, o1] = decodeString(view, offset);
  offset = o1;
  const [tokenStr, o2] = decodeString(view, offset);
  return {
    type: "HELLO",
    version,
    name,
    features,
    token: tokenStr || void 0
  };
}
function decodeWelcome(view, offset) {
  const version = view.getUint8(offset++);
  const featureFlags = view.getUint8(offset++);
  const features = [];
  if (featureFlags & 128) features.push("param");
  if (featureFlags & 64) features.push("event");
  if (featureFlags & 32) features.push("stream");
  if (featureFlags & 16) features.push("gesture");
  if (featureFlags & 8) features.push("timeline");
  const time = Number(view.getBigUint64(offset, false));
  offset += 8;
  const [session, o1] = decodeString(view, offset);
  offset = o1;
  const [name, o2] = decodeString(view, offset);
  offset = o2;
  const [tokenStr, _] = decodeString(view, offset);
  return {
    type: "WELCOME",
    version,
    session,
    name,
    features,
    time,
    token: tokenStr || void 0
  };
}
function decodeAnnounce(view, offset) {
  const [namespace, o1] = decodeString(view, offset);
  offset = o1;
  const count = view.getUint16(offset, false);
  offset += 2;
  const signals = [];
  for (let i = 0; i < count; i++) {
    const [address, o2] = decodeString(view, offset);
    offset = o2;
    const sigCode = view.getUint8(offset++);
    const optFlags = view.getUint8(offset++);
    let datatype;
    let access;
    let meta;
    if (optFlags & 1) {
      const [dt, o] = decodeString(view, offset);
      datatype = dt;
      offset = o;
    }
    if (optFlags & 2) {
      const [ac, o] = decodeString(view, offset);
      access = ac;
      offset = o;
    }
    if (optFlags & 4) {
      const metaFlags = view.getUint8(offset++);
      meta = {};
      if (metaFlags & 1) {
        const [unit, o] = decodeString(view, offset);
        meta.unit = unit;
        offset = o;
      }
      if (metaFlags & 2) {
        const min = view.getFloat64(offset, false);
        offset += 8;
        const max = view.getFloat64(offset, false);
        offset += 8;
        meta.range = [min, max];
      }
      if (metaFlags & 4) {
        const vtype = view.getUint8(offset++);
        const [val, o] = decodeValueData(view, offset, vtype);
        meta.default = val;
        offset = o;
      }
      if (metaFlags & 8) {
        const [desc, o] = decodeString(view, offset);
        meta.description = desc;
        offset = o;
      }
    }
    signals.push({
      address,
      type: getSignalTypeFromCode(sigCode),
      datatype,
      access,
      meta
    });
  }
  return { type: "ANNOUNCE", namespace, signals };
}
function decodeSubscribe(view, offset) {
  const id = view.getUint32(offset, false);
  offset += 4;
  const [pattern, o1] = decodeString(view, offset);
  offset = o1;
  const typeMask = view.getUint8(offset++);
  const types = [];
  if (typeMask !== 255) {
    if (typeMask & 1) types.push("param");
    if (typeMask & 2) types.push("event");
    if (typeMask & 4) types.push("stream");
    if (typeMask & 8) types.push("gesture");
    if (typeMask & 16) types.push("timeline");
  }
  const optFlags = view.getUint8(offset++);
  let options;
  if (optFlags !== 0) {
    options = {};
    if (optFlags & 1) {
      options.maxRate = view.getUint32(offset, false);
      offset += 4;
    }
    if (optFlags & 2) {
      options.epsilon = view.getFloat64(offset, false);
      offset += 8;
    }
    if (optFlags & 4) {
      options.history = view.getUint32(offset, false);
      offset += 4;
    }
    if (optFlags & 8) {
      options.window = view.getUint32(offset, false);
      offset += 4;
    }
  }
  return { type: "SUBSCRIBE", id, pattern, types: types.length > 0 ? types : void 0, options };
}
function decodeUnsubscribe(view, offset) {
  const id = view.getUint32(offset, false);
  return { type: "UNSUBSCRIBE", id };
}
function decodeGet(view, offset) {
  const [address, _] = decodeString(view, offset);
  return { type: "GET", address };
}
function decodeSnapshot(view, offset) {
  const count = view.getUint16(offset, false);
  offset += 2;
  const params = [];
  for (let i = 0; i < count; i++) {
    const [address, o1] = decodeString(view, offset);
    offset = o1;
    const vtype = view.getUint8(offset++);
    const [value, o2] = decodeValueData(view, offset, vtype);
    offset = o2;
    const revision = Number(view.getBigUint64(offset, false));
    offset += 8;
    const optFlags = view.getUint8(offset++);
    let writer;
    let timestamp;
    if (optFlags & 1) {
      const [w, o] = decodeString(view, offset);
      writer = w;
      offset = o;
    }
    if (optFlags & 2) {
      timestamp = Number(view.getBigUint64(offset, false));
      offset += 8;
    }
    params.push({ address, value, revision, writer, timestamp });
  }
  return { type: "SNAPSHOT", params };
}
function decodeBundle(view, offset) {
  const flags = view.getUint8(offset++);
  const hasTs = (flags & 128) !== 0;
  const count = view.getUint16(offset, false);
  offset += 2;
  const timestamp = hasTs ? Number(view.getBigUint64(offset, false)) : void 0;
  if (hasTs) offset += 8;
  const messages = [];
  for (let i = 0; i < count; i++) {
    const len = view.getUint16(offset, false);
    offset += 2;
    const innerData = new Uint8Array(view.buffer, view.byteOffset + offset, len);
    messages.push(decodeV3Binary(innerData));
    offset += len;
  }
  return { type: "BUNDLE", timestamp, messages };
}
function decodeSyncMsg(view, offset) {
  const flags = view.getUint8(offset++);
  const t1 = Number(view.getBigUint64(offset, false));
  offset += 8;
  const t2 = flags & 1 ? Number(view.getBigUint64(offset, false)) : void 0;
  if (flags & 1) offset += 8;
  const t3 = flags & 2 ? Number(view.getBigUint64(offset, false)) : void 0;
  return { type: "SYNC", t1, t2, t3 };
}
function decodeAck(view, offset) {
  const flags = view.getUint8(offset++);
  let address;
  let revision;
  let locked;
  let holder;
  let correlationId;
  if (flags & 1) {
    const [a, o] = decodeString(view, offset);
    address = a;
    offset = o;
  }
  if (flags & 2) {
    revision = Number(view.getBigUint64(offset, false));
    offset += 8;
  }
  if (flags & 4) {
    locked = view.getUint8(offset++) !== 0;
  }
  if (flags & 8) {
    const [h, o] = decodeString(view, offset);
    holder = h;
    offset = o;
  }
  if (flags & 16) {
    correlationId = view.getUint32(offset, false);
    offset += 4;
  }
  return { type: "ACK", address, revision, locked, holder, correlationId };
}
function decodeErrorMsg(view, offset) {
  const code = view.getUint16(offset, false);
  offset += 2;
  const [message, o1] = decodeString(view, offset);
  offset = o1;
  const flags = view.getUint8(offset++);
  let address;
  let correlationId;
  if (flags & 1) {
    const [a, o] = decodeString(view, offset);
    address = a;
    offset = o;
  }
  if (flags & 2) {
    correlationId = view.getUint32(offset, false);
    offset += 4;
  }
  return { type: "ERROR", code, message, address, correlationId };
}
function decodeQuery(view, offset) {
  const [pattern, _] = decodeString(view, offset);
  return { type: "QUERY", pattern };
}
function decodeResultMsg(view, offset) {
  const count = view.getUint16(offset, false);
  offset += 2;
  const signals = [];
  for (let i = 0; i < count; i++) {
    const [address, o1] = decodeString(view, offset);
    offset = o1;
    const sigCode = view.getUint8(offset++);
    const optFlags = view.getUint8(offset++);
    let datatype;
    let access;
    if (optFlags & 1) {
      const [dt, o] = decodeString(view, offset);
      datatype = dt;
      offset = o;
    }
    if (optFlags & 2) {
      const [ac, o] = decodeString(view, offset);
      access = ac;
      offset = o;
    }
    signals.push({
      address,
      type: getSignalTypeFromCode(sigCode),
      datatype,
      access
    });
  }
  return { type: "RESULT", signals };
}
function encodeString(view, offset, str) {
  const encoded = new TextEncoder().encode(str);
  view.setUint16(offset, encoded.length, false);
  offset += 2;
  new Uint8Array(view.buffer).set(encoded, offset);
  return offset + encoded.length;
}
function decodeString(view, offset) {
  const len = view.getUint16(offset, false);
  offset += 2;
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, len);
  const str = new TextDecoder().decode(bytes);
  return [str, offset + len];
}
function encodeValueData(view, offset, value) {
  if (value === null) {
    return offset;
  }
  if (typeof value === "boolean") {
    view.setUint8(offset++, value ? 1 : 0);
    return offset;
  }
  if (typeof value === "number") {
    view.setFloat64(offset, value, false);
    return offset + 8;
  }
  if (typeof value === "string") {
    return encodeString(view, offset, value);
  }
  if (value instanceof Uint8Array) {
    view.setUint16(offset, value.length, false);
    offset += 2;
    new Uint8Array(view.buffer).set(value, offset);
    return offset + value.length;
  }
  if (Array.isArray(value)) {
    view.setUint16(offset, value.length, false);
    offset += 2;
    for (const item of value) {
      view.setUint8(offset++, getValueType(item));
      offset = encodeValueData(view, offset, item);
    }
    return offset;
  }
  if (typeof value === "object") {
    const entries = Object.entries(value);
    view.setUint16(offset, entries.length, false);
    offset += 2;
    for (const [key, val] of entries) {
      offset = encodeString(view, offset, key);
      view.setUint8(offset++, getValueType(val));
      offset = encodeValueData(view, offset, val);
    }
    return offset;
  }
  return offset;
}
function decodeValueData(view, offset, vtype) {
  switch (vtype) {
    case VAL.NULL:
      return [null, offset];
    case VAL.BOOL:
      return [view.getUint8(offset) !== 0, offset + 1];
    case VAL.I8:
      return [view.getInt8(offset), offset + 1];
    case VAL.I16:
      return [view.getInt16(offset, false), offset + 2];
    case VAL.I32:
      return [view.getInt32(offset, false), offset + 4];
    case VAL.I64:
      return [Number(view.getBigInt64(offset, false)), offset + 8];
    case VAL.F32:
      return [view.getFloat32(offset, false), offset + 4];
    case VAL.F64:
      return [view.getFloat64(offset, false), offset + 8];
    case VAL.STRING: {
      const [str, newOffset] = decodeString(view, offset);
      return [str, newOffset];
    }
    case VAL.BYTES: {
      const len = view.getUint16(offset, false);
      offset += 2;
      const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, len);
      return [new Uint8Array(bytes), offset + len];
    }
    case VAL.ARRAY: {
      const count = view.getUint16(offset, false);
      offset += 2;
      const arr = [];
      for (let i = 0; i < count; i++) {
        const itemType = view.getUint8(offset++);
        const [item, newOffset] = decodeValueData(view, offset, itemType);
        arr.push(item);
        offset = newOffset;
      }
      return [arr, offset];
    }
    case VAL.MAP: {
      const count = view.getUint16(offset, false);
      offset += 2;
      const map = {};
      for (let i = 0; i < count; i++) {
        const [key, o1] = decodeString(view, offset);
        offset = o1;
        const valType = view.getUint8(offset++);
        const [val, o2] = decodeValueData(view, offset, valType);
        map[key] = val;
        offset = o2;
      }
      return [map, offset];
    }
    default:
      throw new Error(`Unknown value type: 0x${vtype.toString(16)}`);
  }
}
function getValueType(value) {
  if (value === null) return VAL.NULL;
  if (typeof value === "boolean") return VAL.BOOL;
  if (typeof value === "number") return VAL.F64;
  if (typeof value === "string") return VAL.STRING;
  if (value instanceof Uint8Array) return VAL.BYTES;
  if (Array.isArray(value)) return VAL.ARRAY;
  if (typeof value === "object") return VAL.MAP;
  return VAL.NULL;
}
function getSignalTypeCode(sig) {
  switch (sig) {
    case "param":
      return SIG.PARAM;
    case "event":
      return SIG.EVENT;
    case "stream":
      return SIG.STREAM;
    case "gesture":
      return SIG.GESTURE;
    case "timeline":
      return SIG.TIMELINE;
    default:
      return SIG.EVENT;
  }
}
function getSignalTypeFromCode(code) {
  switch (code) {
    case SIG.PARAM:
      return "param";
    case SIG.EVENT:
      return "event";
    case SIG.STREAM:
      return "stream";
    case SIG.GESTURE:
      return "gesture";
    case SIG.TIMELINE:
      return "timeline";
    default:
      return "event";
  }
}
function getPhaseCode(phase) {
  switch (phase) {
    case "start":
      return PHASE.START;
    case "move":
      return PHASE.MOVE;
    case "end":
      return PHASE.END;
    case "cancel":
      return PHASE.CANCEL;
    default:
      return PHASE.START;
  }
}
function getPhaseFromCode(code) {
  switch (code) {
    case PHASE.START:
      return "start";
    case PHASE.MOVE:
      return "move";
    case PHASE.END:
      return "end";
    case PHASE.CANCEL:
      return "cancel";
    default:
      return "start";
  }
}
function getDefaultQoS(message) {
  switch (message.type) {
    case "SET":
      return 1 /* Confirm */;
    case "PUBLISH":
      return message.signal === "stream" || message.signal === "gesture" ? 0 /* Fire */ : 1 /* Confirm */;
    case "BUNDLE":
      return 2 /* Commit */;
    case "SUBSCRIBE":
    case "UNSUBSCRIBE":
      return 1 /* Confirm */;
    default:
      return 0 /* Fire */;
  }
}
function isMsgpackMap(byte) {
  return (byte & 240) === 128 || byte === 222 || byte === 223;
}

// src/builder.ts
var ClaspBuilder = class {
  constructor(url) {
    this._options = {};
    this._url = url;
  }
  /**
   * Get the configured URL
   */
  getUrl() {
    return this._url;
  }
  /**
   * Get the configured name
   */
  getName() {
    return this._options.name;
  }
  /**
   * Get the configured features
   */
  getFeatures() {
    return this._options.features;
  }
  /**
   * Get the configured token
   */
  getToken() {
    return this._options.token;
  }
  /**
   * Get the reconnect setting
   */
  getReconnect() {
    return this._options.reconnect;
  }
  /**
   * Get the reconnect interval
   */
  getReconnectInterval() {
    return this._options.reconnectInterval;
  }
  /**
   * Get all options (for testing)
   */
  getOptions() {
    return { ...this._options };
  }
  /**
   * Set client name
   */
  name(name) {
    this._options.name = name;
    return this;
  }
  /**
   * Set client name (alias)
   */
  withName(name) {
    return this.name(name);
  }
  /**
   * Set supported features
   */
  features(features) {
    this._options.features = features;
    return this;
  }
  /**
   * Set supported features (alias)
   */
  withFeatures(features) {
    return this.features(features);
  }
  /**
   * Set authentication token
   */
  token(token) {
    this._options.token = token;
    return this;
  }
  /**
   * Set authentication token (alias)
   */
  withToken(token) {
    return this.token(token);
  }
  /**
   * Enable/disable auto-reconnect
   */
  reconnect(enabled) {
    this._options.reconnect = enabled;
    return this;
  }
  /**
   * Enable/disable auto-reconnect with optional interval
   */
  withReconnect(enabled, intervalMs) {
    this._options.reconnect = enabled;
    if (intervalMs !== void 0) {
      this._options.reconnectInterval = intervalMs;
    }
    return this;
  }
  /**
   * Set reconnect interval in milliseconds
   */
  reconnectInterval(ms) {
    this._options.reconnectInterval = ms;
    return this;
  }
  /**
   * Build and connect
   */
  async connect() {
    const client = new Clasp(this._url, this._options);
    await client.connect();
    return client;
  }
};

// src/client.ts
function matchPattern(pattern, address) {
  const regex = pattern.replace(/\*\*/g, "\xA7\xA7").replace(/\*/g, "[^/]+").replace(/§§/g, ".*");
  return new RegExp(`^${regex}$`).test(address);
}
var Clasp = class {
  constructor(url, options = {}) {
    this.ws = null;
    this.sessionId = null;
    this._connected = false;
    this.params = /* @__PURE__ */ new Map();
    this.subscriptions = /* @__PURE__ */ new Map();
    this.nextSubId = 1;
    this.serverTimeOffset = 0;
    this.pendingGets = /* @__PURE__ */ new Map();
    this.signals = /* @__PURE__ */ new Map();
    this.lastError = null;
    this.reconnectAttempts = 0;
    this.maxReconnectAttempts = 10;
    this.reconnectTimer = null;
    this.intentionallyClosed = false;
    // Event callbacks
    this.onConnectCallbacks = [];
    this.onDisconnectCallbacks = [];
    this.onErrorCallbacks = [];
    this.onReconnectCallbacks = [];
    this.url = url;
    this.options = {
      name: "CLASP JS Client",
      features: ["param", "event", "stream"],
      reconnect: true,
      reconnectInterval: 5e3,
      ...options
    };
  }
  /**
   * Create a builder
   */
  static builder(url) {
    return new ClaspBuilder(url);
  }
  /**
   * Connect to server.
   *
   * @param timeout - Connection timeout in milliseconds (default: 10000 or options.connectionTimeout)
   * @throws Error if connection times out or fails
   */
  async connect(timeout) {
    const effectiveTimeout = timeout ?? this.options.connectionTimeout ?? 1e4;
    return new Promise((resolve, reject) => {
      let connectionTimeout = null;
      let resolved = false;
      const cleanup = () => {
        if (connectionTimeout) {
          clearTimeout(connectionTimeout);
          connectionTimeout = null;
        }
      };
      connectionTimeout = setTimeout(() => {
        if (!resolved) {
          resolved = true;
          cleanup();
          this.ws?.close();
          this.ws = null;
          const error = new Error(`Connection timeout after ${effectiveTimeout}ms`);
          this.onErrorCallbacks.forEach((cb) => cb(error));
          reject(error);
        }
      }, effectiveTimeout);
      try {
        this.ws = new WebSocket(this.url, WS_SUBPROTOCOL);
        this.ws.binaryType = "arraybuffer";
        this.ws.onopen = () => {
          this.sendHello();
        };
        this.ws.onmessage = (event) => {
          const data = new Uint8Array(event.data);
          try {
            const message = decode(data);
            this.handleMessage(message);
            if (message.type === "WELCOME" && !resolved) {
              resolved = true;
              cleanup();
              this._connected = true;
              resolve();
              this.onConnectCallbacks.forEach((cb) => cb());
            }
          } catch (e) {
            console.warn("Decode error:", e);
          }
        };
        this.ws.onerror = (event) => {
          if (!resolved) {
            resolved = true;
            cleanup();
            const error = new Error("WebSocket error");
            this.onErrorCallbacks.forEach((cb) => cb(error));
            reject(error);
          }
        };
        this.ws.onclose = (event) => {
          this._connected = false;
          this.onDisconnectCallbacks.forEach((cb) => cb(event.reason));
          if (!resolved) {
            resolved = true;
            cleanup();
            reject(new Error(event.reason || "Connection closed before WELCOME"));
          }
          if (this.options.reconnect && !this.intentionallyClosed) {
            this.scheduleReconnect();
          }
        };
      } catch (e) {
        resolved = true;
        cleanup();
        reject(e);
      }
    });
  }
  /**
   * Check if connected
   */
  get connected() {
    return this._connected;
  }
  /**
   * Get session ID
   */
  get session() {
    return this.sessionId;
  }
  /**
   * Get current server time (microseconds)
   */
  time() {
    return Date.now() * 1e3 + this.serverTimeOffset;
  }
  /**
   * Subscribe to an address pattern.
   *
   * Patterns support wildcards:
   * - `*` matches exactly one path segment: `/a/*\/c` matches `/a/b/c`
   * - `**` matches any number of segments: `/a/**` matches `/a/b/c/d`
   *
   * @param pattern - Address pattern to subscribe to (supports wildcards)
   * @param callback - Function called when matching values are received
   * @param options - Optional subscription options
   * @param options.maxRate - Maximum updates per second (rate limiting)
   * @param options.epsilon - Minimum change threshold for numeric values
   * @returns Unsubscribe function - call to remove the subscription
   *
   * @example
   * ```typescript
   * // Subscribe to all faders
   * const unsub = clasp.subscribe('/mixer/fader/*', (value, address) => {
   *   console.log(`${address} = ${value}`);
   * }, { maxRate: 30 });
   *
   * // Later: unsubscribe
   * unsub();
   * ```
   */
  subscribe(pattern, callback, options) {
    const id = this.nextSubId++;
    this.subscriptions.set(id, { pattern, callback });
    const msg = {
      type: "SUBSCRIBE",
      id,
      pattern,
      options: options ? { maxRate: options.maxRate, epsilon: options.epsilon } : void 0
    };
    this.send(msg);
    return () => {
      this.subscriptions.delete(id);
      this.send({ type: "UNSUBSCRIBE", id });
    };
  }
  /**
   * Shorthand for subscribe
   */
  on(pattern, callback, options) {
    return this.subscribe(pattern, callback, options);
  }
  /**
   * Set a persistent parameter value.
   *
   * The value is stored on the server and broadcast to all subscribers.
   * Uses QoS.Confirm for reliable delivery.
   *
   * @param address - The parameter address (e.g., '/control/volume')
   * @param value - The value to set (number, string, boolean, array, or object)
   *
   * @example
   * ```typescript
   * clasp.set('/mixer/channel/1/volume', 0.75);
   * clasp.set('/scene/name', 'Main Stage');
   * clasp.set('/config/enabled', true);
   * ```
   */
  set(address, value) {
    const msg = {
      type: "SET",
      address,
      value
    };
    this.send(msg, 1 /* Confirm */);
  }
  /**
   * Get current value (from cache or server)
   */
  async get(address) {
    if (this.params.has(address)) {
      return this.params.get(address);
    }
    return new Promise((resolve, reject) => {
      const timeout = setTimeout(() => {
        this.pendingGets.delete(address);
        reject(new Error("Timeout"));
      }, 5e3);
      this.pendingGets.set(address, (value) => {
        clearTimeout(timeout);
        resolve(value);
      });
      this.send({ type: "GET", address });
    });
  }
  /**
   * Emit a one-shot event.
   *
   * Events are not persisted on the server. They are delivered once
   * to all current subscribers and then forgotten.
   *
   * @param address - The event address
   * @param payload - Optional event payload data
   *
   * @example
   * ```typescript
   * // Trigger a cue
   * clasp.emit('/show/cue/trigger', { cue: 'intro', fadeTime: 2.0 });
   *
   * // Simple notification
   * clasp.emit('/alert/fire');
   * ```
   */
  emit(address, payload) {
    const msg = {
      type: "PUBLISH",
      address,
      signal: "event",
      payload: payload ?? null,
      timestamp: this.time()
    };
    this.send(msg, 1 /* Confirm */);
  }
  /**
   * Send a high-rate stream sample.
   *
   * Stream messages use QoS.Fire (best effort, no confirmation) for
   * minimal latency. Use this for sensor data, audio levels, etc.
   * where occasional packet loss is acceptable.
   *
   * @param address - The stream address
   * @param value - The sample value
   *
   * @example
   * ```typescript
   * // Stream sensor data at high rate
   * setInterval(() => {
   *   clasp.stream('/sensor/accelerometer', {
   *     x: getAccelX(),
   *     y: getAccelY(),
   *     z: getAccelZ()
   *   });
   * }, 16); // ~60 Hz
   * ```
   */
  stream(address, value) {
    const msg = {
      type: "PUBLISH",
      address,
      signal: "stream",
      value,
      timestamp: this.time()
    };
    this.send(msg, 0 /* Fire */);
  }
  /**
   * Send gesture input (touch/pen/motion).
   *
   * Gesture messages track multi-touch or pen input through phases:
   * - 'start': Finger/pen touches the surface
   * - 'move': Finger/pen moves while touching
   * - 'end': Finger/pen lifts off
   * - 'cancel': Gesture was interrupted
   *
   * Uses QoS.Fire for minimal latency (suitable for high-frequency move events).
   *
   * @param address - The gesture address (e.g., '/input/touch/0')
   * @param gestureId - Unique identifier for this gesture stream
   * @param phase - Phase of the gesture ('start', 'move', 'end', 'cancel')
   * @param payload - Optional gesture data (e.g., position, pressure)
   *
   * @example
   * ```typescript
   * // Touch start
   * clasp.gesture('/input/touch/0', 1, 'start', { x: 100, y: 200 });
   *
   * // Touch move (high frequency)
   * clasp.gesture('/input/touch/0', 1, 'move', { x: 105, y: 210, pressure: 0.8 });
   *
   * // Touch end
   * clasp.gesture('/input/touch/0', 1, 'end', { x: 110, y: 220 });
   * ```
   */
  gesture(address, gestureId, phase, payload) {
    const msg = {
      type: "PUBLISH",
      address,
      signal: "gesture",
      phase,
      id: gestureId,
      payload: payload ?? null,
      timestamp: this.time()
    };
    this.send(msg, 0 /* Fire */);
  }
  /**
   * Send timeline automation data.
   *
   * Timeline messages define keyframe animations that the router can interpolate.
   * Each keyframe specifies a time offset (in microseconds) and target value.
   *
   * @param address - The parameter address to animate
   * @param keyframes - Array of keyframes with time and value
   * @param options - Optional timeline options
   * @param options.loop - Whether the timeline should loop (default: false)
   * @param options.startTime - Start time in microseconds (defaults to current time)
   *
   * @example
   * ```typescript
   * // Fade opacity from 0 to 1 over 1 second
   * clasp.timeline('/lumen/layer/0/opacity', [
   *   { time: 0, value: 0.0 },
   *   { time: 1000000, value: 1.0 },  // 1 second = 1,000,000 microseconds
   * ]);
   *
   * // Looping animation
   * clasp.timeline('/effect/pulse', [
   *   { time: 0, value: 0.0 },
   *   { time: 500000, value: 1.0 },
   *   { time: 1000000, value: 0.0 },
   * ], { loop: true });
   *
   * // Scheduled start
   * clasp.timeline('/cue/fade', [
   *   { time: 0, value: 1.0 },
   *   { time: 2000000, value: 0.0 },
   * ], { startTime: clasp.time() + 5000000 });  // Start 5 seconds from now
   * ```
   */
  timeline(address, keyframes, options) {
    const msg = {
      type: "PUBLISH",
      address,
      signal: "timeline",
      keyframes,
      loop: options?.loop ?? false,
      timestamp: options?.startTime ?? this.time()
    };
    this.send(msg, 1 /* Confirm */);
  }
  /**
   * Send an atomic bundle of messages.
   *
   * All messages in a bundle are delivered together, ensuring consistency.
   * Optionally schedule the bundle for execution at a specific server time.
   *
   * @param messages - Array of messages to bundle
   * @param options - Optional bundle options
   * @param options.at - Server timestamp (microseconds) for scheduled execution
   *
   * @example
   * ```typescript
   * // Atomic update of multiple values
   * clasp.bundle([
   *   { set: ['/light/1', 1.0] },
   *   { set: ['/light/2', 0.0] },
   *   { emit: ['/cue/complete', { cue: 'crossfade' }] }
   * ]);
   *
   * // Scheduled bundle (execute 100ms from now)
   * clasp.bundle([
   *   { set: ['/effect/strobe', true] }
   * ], { at: clasp.time() + 100000 });
   * ```
   */
  bundle(messages, options) {
    const formatted = messages.map((m) => {
      if (m.set) {
        return { type: "SET", address: m.set[0], value: m.set[1] };
      }
      if (m.emit) {
        return { type: "PUBLISH", address: m.emit[0], signal: "event", payload: m.emit[1] };
      }
      throw new Error("Invalid bundle message");
    });
    this.send(
      { type: "BUNDLE", timestamp: options?.at, messages: formatted },
      2 /* Commit */
    );
  }
  /**
   * Get cached value
   */
  cached(address) {
    return this.params.get(address);
  }
  /**
   * Get all announced signals.
   * Returns signals received via ANNOUNCE or RESULT messages.
   */
  getSignals() {
    return Array.from(this.signals.values());
  }
  /**
   * Query signals matching a pattern.
   *
   * @param pattern - Address pattern to match (supports wildcards)
   * @returns Array of matching signal definitions
   */
  querySignals(pattern) {
    return Array.from(this.signals.values()).filter(
      (signal) => matchPattern(pattern, signal.address)
    );
  }
  /**
   * Get the last error received from the server.
   * Returns null if no error has been received.
   */
  getLastError() {
    return this.lastError;
  }
  /**
   * Clear the last error.
   */
  clearError() {
    this.lastError = null;
  }
  /**
   * Register connect callback
   */
  onConnect(callback) {
    this.onConnectCallbacks.push(callback);
  }
  /**
   * Register disconnect callback
   */
  onDisconnect(callback) {
    this.onDisconnectCallbacks.push(callback);
  }
  /**
   * Register error callback
   */
  onError(callback) {
    this.onErrorCallbacks.push(callback);
  }
  /**
   * Register reconnect callback.
   * Called when a reconnection attempt is made.
   *
   * @param callback - Function called with reconnect attempt number
   */
  onReconnect(callback) {
    this.onReconnectCallbacks.push(callback);
  }
  /**
   * Close connection.
   * Disables auto-reconnect and closes the WebSocket.
   */
  close() {
    this.intentionallyClosed = true;
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.ws?.close();
    this.ws = null;
    this._connected = false;
  }
  // Private methods
  /**
   * Schedule a reconnection attempt with exponential backoff.
   */
  scheduleReconnect() {
    if (this.reconnectAttempts >= this.maxReconnectAttempts) {
      const error = new Error(`Max reconnect attempts (${this.maxReconnectAttempts}) reached`);
      this.onErrorCallbacks.forEach((cb) => cb(error));
      return;
    }
    const baseInterval = this.options.reconnectInterval || 5e3;
    const delay = Math.min(baseInterval * Math.pow(1.5, this.reconnectAttempts), 3e4);
    this.reconnectTimer = setTimeout(async () => {
      this.reconnectAttempts++;
      this.onReconnectCallbacks.forEach((cb) => cb(this.reconnectAttempts));
      try {
        await this.connect();
        this.reconnectAttempts = 0;
        await this.resubscribeAll();
      } catch (e) {
      }
    }, delay);
  }
  /**
   * Resubscribe to all previously registered patterns after reconnect.
   */
  async resubscribeAll() {
    for (const [id, sub] of this.subscriptions) {
      const msg = {
        type: "SUBSCRIBE",
        id,
        pattern: sub.pattern
      };
      this.send(msg);
    }
  }
  sendHello() {
    const hello = {
      type: "HELLO",
      version: PROTOCOL_VERSION,
      name: this.options.name,
      features: this.options.features,
      token: this.options.token
    };
    this.send(hello);
  }
  send(message, qos = 0 /* Fire */) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      const frame = encodeMessage(message, { qos });
      this.ws.send(frame);
    }
  }
  handleMessage(message) {
    switch (message.type) {
      case "WELCOME": {
        const welcome = message;
        this.sessionId = welcome.session;
        this.serverTimeOffset = welcome.time - Date.now() * 1e3;
        break;
      }
      case "SET": {
        const set = message;
        this.params.set(set.address, set.value);
        this.notifySubscribers(set.address, set.value);
        break;
      }
      case "SNAPSHOT": {
        const snapshot = message;
        for (const param of snapshot.params) {
          this.params.set(param.address, param.value);
          const resolver = this.pendingGets.get(param.address);
          if (resolver) {
            resolver(param.value);
            this.pendingGets.delete(param.address);
          }
          this.notifySubscribers(param.address, param.value, param);
        }
        break;
      }
      case "PUBLISH": {
        const pub = message;
        let value;
        if (pub.signal === "gesture") {
          const payload = pub.payload ?? pub.value ?? {};
          value = {
            ...payload,
            ...pub.phase !== void 0 ? { phase: pub.phase } : {},
            ...pub.id !== void 0 ? { gestureId: pub.id } : {}
          };
        } else {
          value = pub.value ?? pub.payload ?? null;
        }
        this.notifySubscribers(pub.address, value);
        break;
      }
      case "PING":
        this.send({ type: "PONG" });
        break;
      case "PONG":
        break;
      case "ERROR": {
        const error = message;
        console.error(`CLASP error ${error.code}: ${error.message}`, error.address ? `(address: ${error.address})` : "");
        this.lastError = error;
        break;
      }
      case "ACK": {
        const ack = message;
        if (typeof console.debug === "function") {
          console.debug("CLASP ACK received:", ack.address, "revision:", ack.revision);
        }
        break;
      }
      case "ANNOUNCE": {
        const announce = message;
        for (const signal of announce.signals) {
          this.signals.set(signal.address, signal);
        }
        break;
      }
      case "SYNC": {
        const sync = message;
        if (sync.t2 !== void 0 && sync.t3 !== void 0) {
          const t4 = Date.now() * 1e3;
          const roundTrip = t4 - sync.t1 - (sync.t3 - sync.t2);
          this.serverTimeOffset = sync.t2 - sync.t1 - roundTrip / 2;
        }
        break;
      }
      case "RESULT": {
        const result = message;
        for (const signal of result.signals) {
          this.signals.set(signal.address, signal);
        }
        break;
      }
      case "BUNDLE": {
        const bundle = message;
        for (const innerMsg of bundle.messages) {
          this.handleMessage(innerMsg);
        }
        break;
      }
      // Client-initiated messages not expected from server
      case "HELLO":
      case "SUBSCRIBE":
      case "UNSUBSCRIBE":
      case "GET":
      case "QUERY":
        console.warn("Received unexpected client-type message:", message.type);
        break;
    }
  }
  notifySubscribers(address, value, meta) {
    for (const [, sub] of this.subscriptions) {
      if (matchPattern(sub.pattern, address)) {
        sub.callback(value, address, meta);
      }
    }
  }
};
export {
  Clasp,
  ClaspBuilder,
  DEFAULT_DISCOVERY_PORT,
  DEFAULT_WS_PORT,
  MAGIC_BYTE,
  MSG,
  MessageType,
  PHASE,
  PROTOCOL_VERSION,
  QoS,
  SIG,
  SignalType,
  VAL,
  WS_SUBPROTOCOL,
  checkComplete,
  decode,
  decodeFlags,
  decodeFrame,
  decodeMessage,
  decodeMessageBinary,
  encode,
  encodeFlags,
  encodeFrame,
  encodeMessage,
  encodeMessageBinary,
  isAckMessage,
  isErrorMessage,
  isHelloMessage,
  isPublishMessage,
  isSetMessage,
  isSubscribeMessage,
  isWelcomeMessage
};
