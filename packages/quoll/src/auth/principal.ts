/** Who a request acts as, resolved from its bearer token. */
export type Principal =
  | { kind: 'admin'; subject: string; tokenId: string }
  | { kind: 'workspace'; workspaceId: number; subject: string; tokenId: string };
