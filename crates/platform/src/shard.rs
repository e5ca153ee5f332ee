//! Sharding by key: 1,024 virtual buckets mapped onto N physical databases.
//!
//! A key (a user id) hashes to a bucket once and forever; which database holds a bucket is a
//! table ([`ShardMap`]), so a shard is added by moving some buckets to it, never by rehashing
//! every key. The hash is FNV-1a (64 bit) over the key's 16 bytes: tiny, stable across
//! releases and platforms (it is a storage format: changing it would strand data), and well
//! spread over UUIDv7 keys whose leading bytes are a timestamp.

use uuid::Uuid;

/// Virtual buckets: enough for fine-grained moves, few enough to hold the map in memory.
pub const BUCKETS: u16 = 1024;

/// The bucket of `key`.
pub fn bucket_of(key: &Uuid) -> u16 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = key
        .as_bytes()
        .iter()
        .fold(OFFSET, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME));
    (hash % u64::from(BUCKETS)) as u16
}

/// Which shard owns each bucket, and which buckets are being moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    owners: Vec<u16>,
    moving: Vec<bool>,
}

impl ShardMap {
    /// The initial layout over `shards` databases: bucket `b` on shard `b mod shards`.
    pub fn spread(shards: u16) -> Self {
        let shards = shards.max(1);
        Self {
            owners: (0..BUCKETS).map(|bucket| bucket % shards).collect(),
            moving: vec![false; usize::from(BUCKETS)],
        }
    }

    /// A map from `(bucket, shard, moving)` rows; every bucket must appear exactly once and
    /// name a shard below `shards`.
    pub fn from_rows(rows: impl IntoIterator<Item = (u16, u16, bool)>, shards: u16) -> Result<Self, String> {
        let mut owners = vec![None; usize::from(BUCKETS)];
        let mut moving = vec![false; usize::from(BUCKETS)];
        for (bucket, shard, is_moving) in rows {
            let slot = owners
                .get_mut(usize::from(bucket))
                .ok_or_else(|| format!("bucket {bucket} is out of range (0..{BUCKETS})"))?;
            if shard >= shards {
                return Err(format!(
                    "bucket {bucket} belongs to shard {shard}, but only {shards} shard database(s) are configured"
                ));
            }
            *slot = Some(shard);
            moving[usize::from(bucket)] = is_moving;
        }
        let owners = owners
            .into_iter()
            .enumerate()
            .map(|(bucket, owner)| owner.ok_or_else(|| format!("bucket {bucket} has no shard")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { owners, moving })
    }

    /// The shard that owns `bucket`.
    pub fn shard_of(&self, bucket: u16) -> u16 {
        self.owners[usize::from(bucket % BUCKETS)]
    }

    /// Whether `bucket` is being moved (its writes must wait).
    pub fn is_moving(&self, bucket: u16) -> bool {
        self.moving[usize::from(bucket % BUCKETS)]
    }

    /// `(bucket, shard, moving)` for every bucket.
    pub fn rows(&self) -> impl Iterator<Item = (u16, u16, bool)> + '_ {
        (0..BUCKETS).map(|bucket| (bucket, self.shard_of(bucket), self.is_moving(bucket)))
    }

    /// How many buckets each of `shards` shards owns.
    pub fn bucket_counts(&self, shards: u16) -> Vec<usize> {
        let mut counts = vec![0; usize::from(shards)];
        for owner in &self.owners {
            if let Some(count) = counts.get_mut(usize::from(*owner)) {
                *count += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_lands_in_the_same_bucket() {
        // A storage format: these values must never change.
        let key = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001);
        assert_eq!(bucket_of(&key), bucket_of(&key));
        assert_eq!(bucket_of(&Uuid::nil()), 101);
        assert_eq!(bucket_of(&key), bucket_of(&Uuid::from_bytes(*key.as_bytes())));
    }

    #[test]
    fn time_ordered_keys_spread_over_the_buckets() {
        let mut counts = vec![0u32; usize::from(BUCKETS)];
        for _ in 0..102_400 {
            counts[usize::from(bucket_of(&Uuid::now_v7()))] += 1;
        }
        let (min, max) = (counts.iter().min().copied(), counts.iter().max().copied());
        // 100 per bucket on average; a uniform hash stays well within 50..160.
        assert!(min > Some(50) && max < Some(160), "{min:?}..{max:?}");
    }

    #[test]
    fn maps_spread_round_robin_and_reject_holes_and_unknown_shards() {
        let map = ShardMap::spread(3);
        assert_eq!(map.bucket_counts(3), vec![342, 341, 341]);
        assert_eq!(map.shard_of(4), 1);
        let rebuilt = ShardMap::from_rows(map.rows(), 3).expect("round trip");
        assert_eq!(rebuilt, map);
        assert!(ShardMap::from_rows(map.rows(), 2).is_err(), "shard 2 of 2");
        assert!(
            ShardMap::from_rows(map.rows().skip(1), 3).is_err(),
            "bucket 0 missing"
        );
    }
}
