//! The container a scale-up clones, with the group rules that apply to it,
//! read from the group snapshot the command holds (never re-read by name).

use crate::error::{Error, Result};
use crate::inventory::Group;
use crate::model::ContainerDetails;
use crate::rules::bounds::{self, Bounds, GroupIdentity};

/// A container to clone, with the group rules that apply to it.
pub(super) struct Source {
    pub details: ContainerDetails,
    pub group: GroupIdentity,
    pub bounds: Bounds,
}

impl Source {
    /// The group `details` belongs to, as its labels say; refused when its
    /// group label is not one the API can address.
    pub fn identify(details: &ContainerDetails) -> Result<GroupIdentity> {
        let labels = details.labels();
        let identity = bounds::identify(&details.id, &details.name, &labels);
        bounds::check_group_name(&identity, &labels).map_err(Error::Conflict)?;
        Ok(identity)
    }

    /// The source with its group's rules: the bounds of `group` as the
    /// inventory reads them for every consumer (the strictest of its
    /// originals), or the container's own labels for a group the inventory
    /// does not hold yet.
    pub fn of(details: ContainerDetails, group: Option<&Group>, default_max: u32) -> Result<Self> {
        let identity = Self::identify(&details)?;
        let invalid = |reason| Error::InvalidGroup { group: identity.name.clone(), reason };
        let bounds = match group {
            Some(g) => g.bounds.clone().map_err(invalid)?,
            None => Bounds::from_labels(&details.labels(), default_max).map_err(invalid)?,
        };
        Ok(Self { details, group: identity, bounds })
    }
}
