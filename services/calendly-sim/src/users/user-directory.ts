import type { Clock } from '../http/clock';
import { calendlyTime } from '../http/clock';
import { invalidArgument } from '../http/errors';
import { jwtShapedToken, newUuid, uuidOf } from '../http/ids';
import { refill, type Durable } from '../state/state-file';

export type Plan = 'free' | 'standard';
export type Role = 'owner' | 'admin' | 'user';

export interface Organization {
  uuid: string;
  uri: string;
  name: string;
  createdAt: number;
}

export interface SimUser {
  uuid: string;
  uri: string;
  name: string;
  slug: string;
  email: string;
  timezone: string;
  organization: Organization;
  role: Role;
  plan: Plan;
  personalAccessToken: string;
  createdAt: number;
}

export interface NewUser {
  name: string;
  email: string;
  /** An organization URI or uuid returned earlier, or a label: users given the same label share one organization. */
  organization?: string;
  plan?: Plan;
  role?: Role;
  timezone?: string;
}

/** Calendly's users and organizations, and each user's personal access token. */
export interface UserDirectory extends Durable {
  create(input: NewUser): SimUser;
  get(uuid: string): SimUser | undefined;
  /** A user by uuid or user URI. */
  find(reference: string): SimUser | undefined;
  findOrganization(reference: string): Organization | undefined;
  byPersonalAccessToken(token: string): SimUser | undefined;
  all(): SimUser[];
  membersOf(organization: Organization): SimUser[];
  clear(): void;
}

export function createUserDirectory(deps: { baseUrl: string; clock: Clock }): UserDirectory {
  const users = new Map<string, SimUser>();
  const organizations = new Map<string, Organization>();
  const organizationsByLabel = new Map<string, Organization>();
  const byPat = new Map<string, SimUser>();
  const slugs = new Set<string>();
  const collections = { users, organizations, organizationsByLabel, byPat, slugs };

  const findOrganization = (reference: string) => {
    const uuid = uuidOf(reference, 'organizations');
    return uuid ? organizations.get(uuid) : undefined;
  };

  const uniqueSlug = (name: string) => {
    const base =
      name
        .toLowerCase()
        .normalize('NFKD')
        .replace(/[^a-z0-9]+/g, '-')
        .replace(/^-+|-+$/g, '')
        .slice(0, 40) || 'user';
    let slug = base;
    for (let n = 2; slugs.has(slug); n += 1) slug = `${base}-${n}`;
    slugs.add(slug);
    return slug;
  };

  const newOrganization = (name: string): Organization => {
    const uuid = newUuid();
    const organization = { uuid, uri: `${deps.baseUrl}/organizations/${uuid}`, name, createdAt: deps.clock.now() };
    organizations.set(uuid, organization);
    return organization;
  };

  return {
    create(input) {
      let organization: Organization | undefined;
      let joining = false;
      if (input.organization !== undefined) {
        organization = findOrganization(input.organization) ?? organizationsByLabel.get(input.organization);
        const looksLikeReference =
          uuidOf(input.organization, 'organizations') !== undefined || /^https?:\/\//.test(input.organization);
        if (!organization && looksLikeReference) {
          throw invalidArgument([{ parameter: 'organization', message: 'names no simulated organization' }]);
        }
        joining = organization !== undefined;
      }
      if (!organization) {
        organization = newOrganization(input.organization ?? `${input.name}'s organization`);
        if (input.organization !== undefined) organizationsByLabel.set(input.organization, organization);
      }
      const uuid = newUuid();
      const user: SimUser = {
        uuid,
        uri: `${deps.baseUrl}/users/${uuid}`,
        name: input.name,
        slug: uniqueSlug(input.name),
        email: input.email,
        timezone: input.timezone ?? 'America/New_York',
        organization,
        role: input.role ?? (joining ? 'user' : 'owner'),
        plan: input.plan ?? 'standard',
        personalAccessToken: jwtShapedToken({ iss: deps.baseUrl, user_uuid: uuid, typ: 'personal_access_token' }),
        createdAt: deps.clock.now(),
      };
      users.set(uuid, user);
      byPat.set(user.personalAccessToken, user);
      return user;
    },
    get: (uuid) => users.get(uuid),
    find(reference) {
      const uuid = uuidOf(reference, 'users');
      return uuid ? users.get(uuid) : undefined;
    },
    findOrganization,
    byPersonalAccessToken: (token) => byPat.get(token),
    all: () => [...users.values()],
    membersOf: (organization) => [...users.values()].filter((user) => user.organization === organization),
    durableState: () => ({ collections }),
    restoreState: (saved) => refill(collections, saved.collections),
    clear() {
      users.clear();
      organizations.clear();
      organizationsByLabel.clear();
      byPat.clear();
      slugs.clear();
    },
  };
}

/** `GET /users/{uuid}`'s resource. */
export function userResource(user: SimUser, baseUrl: string) {
  return {
    uri: user.uri,
    name: user.name,
    slug: user.slug,
    email: user.email,
    scheduling_url: `${baseUrl}/${user.slug}`,
    timezone: user.timezone,
    avatar_url: null,
    current_organization: user.organization.uri,
    resource_type: 'User',
    locale: 'en',
    created_at: calendlyTime(user.createdAt),
    updated_at: calendlyTime(user.createdAt),
  };
}

/** `GET /organizations/{uuid}`'s resource. */
export function organizationResource(organization: Organization, owner: SimUser | undefined) {
  return {
    uri: organization.uri,
    name: organization.name,
    plan: owner?.plan === 'free' ? 'basic' : 'standard',
    stage: owner?.plan === 'free' ? 'free' : 'paid',
    created_at: calendlyTime(organization.createdAt),
    updated_at: calendlyTime(organization.createdAt),
  };
}

export const isAdmin = (user: SimUser) => user.role === 'owner' || user.role === 'admin';
