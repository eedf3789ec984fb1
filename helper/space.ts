// The RFC 4331 quota properties of a share: the user's disk quota on its filesystem where that
// filesystem keeps quotas (quotactl, asked as the user), the filesystem's free space otherwise.
import * as fs from 'node:fs';
import type { Space } from '../common/storage';
import { diskQuota, type DiskQuota } from '../native/index';
import { guard } from './errno';
import { osPath } from './layout';

export async function spaceOf(fsPath: string): Promise<Space> {
  const stats = await guard(fs.promises.statfs(osPath(fsPath), { bigint: true }));
  const filesystem = {
    availableBytes: Number(stats.bavail * stats.bsize),
    usedBytes: Number((stats.blocks - stats.bfree) * stats.bsize),
  };
  let quota: DiskQuota | null = null;
  try {
    // The worker runs as the user: its effective uid is whose quota counts.
    quota = diskQuota(osPath(fsPath), process.geteuid!());
  } catch {
    // The path cannot be opened for the query (e.g. a file without read permission): no quota view.
  }
  return spaceFrom(filesystem, quota);
}

/**
 * With a quota: used is what the quota charges the user; available is what is left below the hard
 * limit (the one the kernel enforces at once; the soft limit when only that is set), never more
 * than the filesystem has free. Without a limit, the filesystem's free space.
 */
export function spaceFrom(filesystem: Space, quota: DiskQuota | null): Space {
  if (quota === null) return filesystem;
  const limit = quota.hardLimitBytes > 0 ? quota.hardLimitBytes : quota.softLimitBytes;
  if (limit === 0) return { availableBytes: filesystem.availableBytes, usedBytes: quota.usedBytes };
  return {
    availableBytes: Math.max(0, Math.min(limit - quota.usedBytes, filesystem.availableBytes)),
    usedBytes: quota.usedBytes,
  };
}
