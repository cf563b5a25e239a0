// Type-level test: the hand-written index.d.ts agrees with the
// implementation. `npm run typecheck` first emits the declarations that
// TypeScript infers from index.js's JSDoc into .types-impl/, then checks
// this file. A mismatch is a compile error on one of the lines below.

import * as Declared from '../index.js'; // resolves to index.d.ts
import * as Implemented from '../.types-impl/index.js'; // inferred from index.js

type Extends<A, B> = [A] extends [B] ? true : false;
type Equal<A, B> = Extends<A, B> extends true ? Extends<B, A> : false;
declare function assert<T extends true>(): void;

type DeclaredSocket = typeof Declared.WsTicketSocket;
type ImplementedSocket = typeof Implemented.WsTicketSocket;
type DeclaredMintError = typeof Declared.MintError;
type ImplementedMintError = typeof Implemented.MintError;

// The same runtime exports.
assert<Equal<keyof typeof Declared, keyof typeof Implemented>>();

// Whatever the declarations let an app pass, the implementation accepts.
assert<Extends<ConstructorParameters<DeclaredSocket>, ConstructorParameters<ImplementedSocket>>>();
assert<Extends<ConstructorParameters<DeclaredMintError>, ConstructorParameters<ImplementedMintError>>>();
assert<Extends<Declared.WsTicketSocketOptions, Implemented.WsTicketSocketOptions>>();
assert<Extends<Declared.MintFunction, Implemented.MintFunction>>();

// The same statics, and the same public members with the same types.
assert<Equal<Omit<DeclaredSocket, 'prototype'>, Omit<ImplementedSocket, 'prototype'>>>();
assert<Equal<keyof Declared.WsTicketSocket, keyof Implemented.WsTicketSocket>>();
assert<Equal<
  Omit<Declared.WsTicketSocket, 'addEventListener' | 'removeEventListener'>,
  Omit<Implemented.WsTicketSocket, 'addEventListener' | 'removeEventListener'>
>>();
assert<Equal<keyof Declared.MintError, keyof Implemented.MintError>>();
assert<Equal<Declared.MintError, Implemented.MintError>>();

// The same shared types.
assert<Equal<Declared.WsTicketState, Implemented.WsTicketState>>();
assert<Equal<Declared.MintResult, Implemented.MintResult>>();
assert<Equal<Declared.MintContext, Implemented.MintContext>>();
assert<Equal<Declared.WebSocketLike, Implemented.WebSocketLike>>();
assert<Equal<Declared.WebSocketConstructor, Implemented.WebSocketConstructor>>();
assert<Equal<Declared.ResponseLike, Implemented.ResponseLike>>();
assert<Equal<Declared.MintRequestInit, Implemented.MintRequestInit>>();
assert<Equal<Declared.FetchFunction, Implemented.FetchFunction>>();

// The declared options name exactly the implementation's options.
type Keys<T> = T extends unknown ? keyof T : never;
assert<Equal<Keys<Declared.WsTicketSocketOptions>, keyof Implemented.WsTicketSocketOptions>>();
